"""Tells customers about their complaints: plans notifications from the event store, sends them, records them.

Three passes, each safe on every replica at once:
- planning reads the complaints' events after its position and queues one notification per trigger event
  and channel the policy names and the customer has an address for (idempotent by key, see
  `notification_queue`). It reads the event store, not Kafka: republishing events plans nothing again.
- sending takes due notifications under a lease, holds those in a channel's quiet hours until they end,
  and retries failures with back-off until the policy's last attempt, after which the notification is a
  dead letter (`failed`, with its reason).
- recording puts each outcome on the complaint's timeline (`CustomerNotified`, `NotificationFailed`) once.
Delivery is at least once: a replica that dies between the channel's acceptance and its own note of it
leaves the notification to be sent again after the lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from eventsourcing.domain import AggregateEvent

from services.complaints.application import ComplaintsApplication
from services.complaints.domain import Complaint, Notice
from services.complaints.notification_channels import Channel, DeliveryFailed, OutboundMessage
from services.complaints.notification_queue import Notification, NotificationQueue
from services.complaints.notifications import ChannelName, TriggerName, load_templates, policy_at
from services.complaints.personal_data import CustomerData
from services.complaints.surveys import SurveyTicket, SurveyTokens
from shared.clock import Clock
from shared.metrics import NOTIFICATIONS

logger = logging.getLogger(__name__)
PLANNER = "customer-notifications"
# The internal events that tell the customer something, by trigger; a pause only if it waits on them.
TRIGGERS: dict[str, TriggerName] = {
    "Complaint.Registered": "registered",
    "Complaint.HandOffAccepted": "hand_off_accepted",
    "Complaint.Rectified": "result_recorded",
    "Complaint.ResolvedOnSpot": "result_recorded",
    "Complaint.Closed": "closed",
    "Complaint.Paused": "paused_for_customer",
}


@dataclass(frozen=True)
class Links:
    """Where the customer follows their complaint and answers its survey: the operator's customer portal,
    which calls this service's public API."""

    progress: str  # with {number}
    survey: str  # with {token}
    tokens: SurveyTokens

    def values(self, complaint: Complaint, notification: Notification) -> dict[str, str]:
        values = {"number": complaint.number, "progress_url": self.progress.format(number=complaint.number)}
        if notification.result_at is not None:
            token = self.tokens.issue(SurveyTicket.for_result(complaint.id, notification.result_at))
            values["survey_url"] = self.survey.format(token=token)
        return values


def address_of(customer: CustomerData, channel: str) -> str | None:
    return {"sms": customer.phone, "email": customer.email, "wechat": customer.wechat_openid}[channel]


class Notifier:
    def __init__(
        self,
        complaints: ComplaintsApplication,
        queue: NotificationQueue,
        channels: dict[ChannelName, Channel],
        links: Links,
        clock: Clock,
        batch_size: int = 200,
    ) -> None:
        self.complaints = complaints
        self.queue = queue
        self.channels = channels
        self.links = links
        self.clock = clock
        self.batch_size = batch_size

    async def run(self, poll_seconds: float) -> None:
        while True:
            try:
                await self.plan()
                await self.send_due()
                await self.record_outcomes()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database or a channel may come back; notifying must not stop for good
                logger.exception("customer notifications: a pass failed; trying again")
            await asyncio.sleep(poll_seconds)

    async def plan(self) -> None:
        """Queues the notifications of the events stored since the last pass."""
        recorder = self.complaints.recorder
        newest = await asyncio.to_thread(recorder.max_notification_id) or 0
        position = await self.queue.position(PLANNER, newest)
        while position < newest:
            stored = await asyncio.to_thread(
                recorder.select_notifications, start=position, limit=self.batch_size, inclusive_of_start=False
            )
            if not stored:
                return
            events = [cast(AggregateEvent, self.complaints.mapper.to_domain_event(item)) for item in stored]
            planned = await asyncio.to_thread(self._notifications_of, events)
            if not await self.queue.plan(PLANNER, planned, position, stored[-1].id):
                return  # another replica planned these; the next pass goes on from where it got
            position = stored[-1].id

    def _notifications_of(self, events: Sequence[AggregateEvent]) -> list[Notification]:
        return notifications_of(events, self._customer, set(self.channels))

    def _customer(self, event: AggregateEvent) -> CustomerData | None:
        if isinstance(event, Complaint.Registered):  # the most frequent trigger: no need to load the complaint
            return self.complaints.customer_sealed_in(event.originator_id, event.customer_sealed)
        complaint = self.complaints.find(Complaint, event.originator_id)
        return None if complaint is None else self.complaints.customer_of(complaint)

    async def send_due(self) -> None:
        while due := await self.queue.take_due(self.clock(), self.batch_size):
            for notification in due:
                await self._send(notification)

    async def _send(self, notification: Notification) -> None:
        now = self.clock()
        policy = policy_at(now)
        quiet_hours = policy.quiet_hours.get(cast(ChannelName, notification.channel))
        if quiet_hours is not None and (release := quiet_hours.release(now)) is not None:
            await self.queue.hold(notification, release)
            NOTIFICATIONS.labels(notification.channel, notification.template, "held").inc()
            return
        complaint = await asyncio.to_thread(self.complaints.find, Complaint, notification.complaint_id)
        customer = None if complaint is None else await asyncio.to_thread(self.complaints.customer_of, complaint)
        address = None if customer is None else address_of(customer, notification.channel)
        if complaint is None or address is None:
            await self._finish(notification, now, "the customer's personal data was erased")
            return
        message = OutboundMessage(
            channel=cast(ChannelName, notification.channel),
            address=address,
            template=load_templates()[notification.template][notification.template_version],
            values=self.links.values(complaint, notification),
            idempotency_key=f"{notification.complaint_id}:{notification.key}",
        )
        try:
            await self.channels[message.channel].send(message)
        except DeliveryFailed as failure:
            if notification.attempts + 1 >= policy.retry.attempts:
                await self._finish(notification, now, str(failure))
                return
            await self.queue.retry(
                notification, now + policy.retry.delay_after(notification.attempts + 1), str(failure)
            )
            NOTIFICATIONS.labels(notification.channel, notification.template, "retried").inc()
            logger.info("notification %s of a complaint: %s; retrying", notification.key, failure)
            return
        await self._finish(notification, now, None)

    async def _finish(self, notification: Notification, now: datetime, error: str | None) -> None:
        await self.queue.finish(notification, now, error)
        NOTIFICATIONS.labels(notification.channel, notification.template, "sent" if error is None else "failed").inc()
        if error is not None:
            logger.warning("notification %s of a complaint failed for good: %s", notification.key, error)

    async def record_outcomes(self) -> None:
        while finished := await self.queue.unrecorded(self.batch_size):
            for notification in finished:
                await asyncio.to_thread(
                    self.complaints.record_notification, notification.complaint_id, notice_of(notification)
                )
                await self.queue.mark_recorded(notification)


def notice_of(notification: Notification) -> Notice:
    assert notification.finished_at is not None, "only a finished notification is recorded"
    return Notice(
        key=notification.key,
        trigger=notification.trigger,
        channel=notification.channel,
        template=notification.template,
        template_version=notification.template_version,
        attempts=notification.attempts,
        at=notification.finished_at,
        result_at=notification.result_at,
        failure=notification.last_error if notification.state == "failed" else None,
    )


def notifications_of(
    events: Sequence[AggregateEvent], customer_of: Callable[[AggregateEvent], CustomerData | None], channels: Set[str]
) -> list[Notification]:
    """The notifications the events call for: one per trigger event and channel that the policy in force then
    names, that this service can send by (`channels`), and that the customer has an address for."""
    planned: list[Notification] = []
    for event in events:
        trigger_name = TRIGGERS.get(type(event).__qualname__)
        if trigger_name is None:
            continue
        # The service's clock as the event recorded it (the store's timestamp is the system's)
        at: datetime = event.registered_at if isinstance(event, Complaint.Registered) else event.at  # type: ignore[attr-defined]
        trigger = policy_at(at).triggers.get(trigger_name)
        if trigger is None or not trigger.channels:
            continue
        if trigger_name == "paused_for_customer" and getattr(event, "reason_code", None) not in trigger.pause_reasons:
            continue
        customer = customer_of(event)
        for channel in trigger.channels:
            if channel not in channels or customer is None or address_of(customer, channel) is None:
                continue
            planned.append(
                Notification(
                    complaint_id=event.originator_id,
                    occurrence=event.originator_version,
                    channel=channel,
                    trigger=trigger_name,
                    template=trigger.template,
                    template_version=trigger.template_version,
                    result_at=at if trigger_name == "result_recorded" else None,
                    due_at=at,
                )
            )
    return planned
