"""What the customer is told, when, and by which channel: the notification policy and its templates.

Both are versioned data files here. A policy file (named after its version, effective from a date) says
which complaint events notify the customer (the triggers), by which channels, with which template
version, and when a channel must stay quiet; `templates.json` holds every version of every template,
never edited once used, so a sent notification's (template, version) always names the words it carried.
A file that does not validate is refused at start-up with the bad entry named.
"""

from __future__ import annotations

import string
from datetime import datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from shared.catalog import PauseReason
from shared.clock import CHINA_TIME
from shared.contracts import describe_validation_error
from shared.versioned import in_force_at, load_version

NOTIFICATIONS_DIR = Path(__file__).parent
TEMPLATES_FILE = NOTIFICATIONS_DIR / "templates.json"

ChannelName = Literal["sms", "email", "wechat"]
TriggerName = Literal["registered", "hand_off_accepted", "result_recorded", "closed", "paused_for_customer"]
# What each trigger's words may name: only the survey's trigger has a survey link to give.
PLACEHOLDERS: dict[TriggerName, frozenset[str]] = {
    "registered": frozenset({"number", "progress_url"}),
    "hand_off_accepted": frozenset({"number", "progress_url"}),
    "result_recorded": frozenset({"number", "progress_url", "survey_url"}),
    "closed": frozenset({"number", "progress_url"}),
    "paused_for_customer": frozenset({"number", "progress_url"}),
}


class InvalidNotificationPolicy(ValueError):
    pass


class WeChatTemplate(BaseModel):
    """A WeChat template message: the platform's template id and the text of each of its fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    template_id: str = Field(min_length=1)
    fields: dict[str, str] = Field(min_length=1)


class TemplateVersion(BaseModel):
    """The words of one version of a template, for each channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sms: str = Field(min_length=1, max_length=300)
    email_subject: str = Field(min_length=1)
    email_body: str = Field(min_length=1)
    wechat: WeChatTemplate

    def texts(self) -> list[str]:
        return [self.sms, self.email_subject, self.email_body, *self.wechat.fields.values()]


TEMPLATES_ADAPTER = TypeAdapter(dict[str, dict[int, TemplateVersion]])


class QuietHours(BaseModel):
    """China time; `start` after `end` spans midnight (21:00 to 08:00)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time: give a window, or no quiet hours")
        return self

    def release(self, instant: datetime) -> datetime | None:
        """When a message due at `instant` may go: None if not within the quiet hours, else their end."""
        local = instant.astimezone(CHINA_TIME)
        clock = local.time().replace(tzinfo=None)
        spans_midnight = self.start > self.end
        quiet = (clock >= self.start or clock < self.end) if spans_midnight else self.start <= clock < self.end
        if not quiet:
            return None
        day = local.date() + timedelta(days=1) if spans_midnight and clock >= self.start else local.date()
        return datetime.combine(day, self.end, CHINA_TIME)


class Retry(BaseModel):
    """Attempts of one notification on one channel; after the last it is a dead letter, recorded as failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attempts: int = Field(ge=1, le=20)
    first_delay_seconds: float = Field(gt=0)
    factor: float = Field(ge=1)
    max_delay_seconds: float = Field(gt=0)

    def delay_after(self, attempts_made: int) -> timedelta:
        """The wait before the next attempt, once `attempts_made` (1 or more) have failed."""
        seconds = self.first_delay_seconds * self.factor ** (attempts_made - 1)
        return timedelta(seconds=min(seconds, self.max_delay_seconds))


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    template: str
    template_version: int = Field(ge=1)
    channels: list[ChannelName] = Field(description="Empty: this trigger notifies no one under this policy.")
    pause_reasons: frozenset[PauseReason] = Field(
        default=frozenset(), description="paused_for_customer only: the pauses that wait on the customer."
    )


class NotificationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    effective_from: AwareDatetime
    source: str
    triggers: dict[TriggerName, Trigger]
    quiet_hours: dict[ChannelName, QuietHours] = Field(default_factory=dict)
    retry: Retry
    feedback_requires_customer_told: bool = Field(
        default=False,
        description="Staff may record feedback only once the customer was told the result: by a notification"
        " sent of it, or by a contact recorded after it.",
    )

    @model_validator(mode="after")
    def _templates_exist(self) -> NotificationPolicy:
        templates = load_templates()
        for name, trigger in self.triggers.items():
            if trigger.template_version not in templates.get(trigger.template, {}):
                raise ValueError(
                    f"triggers.{name}: no template {trigger.template!r} version {trigger.template_version}"
                )
            check_placeholders(name, templates[trigger.template][trigger.template_version])
            if trigger.pause_reasons and name != "paused_for_customer":
                raise ValueError(f"triggers.{name}.pause_reasons: only paused_for_customer waits on pauses")
        return self

    def template_of(self, trigger: Trigger) -> TemplateVersion:
        return load_templates()[trigger.template][trigger.template_version]


def check_placeholders(trigger: TriggerName, template: TemplateVersion) -> None:
    allowed = PLACEHOLDERS[trigger]
    for text in template.texts():
        for _, name, _, _ in string.Formatter().parse(text):
            if name is not None and name not in allowed:
                raise ValueError(f"{trigger}: {{{name}}} is not one of {', '.join(sorted(allowed))}")


@cache
def load_templates(path: Path = TEMPLATES_FILE) -> dict[str, dict[int, TemplateVersion]]:
    try:
        return TEMPLATES_ADAPTER.validate_json(path.read_text())
    except ValidationError as error:
        raise InvalidNotificationPolicy(f"{path.name}: {describe_validation_error(error)}") from None


@cache
def load_policies(directory: Path = NOTIFICATIONS_DIR) -> tuple[NotificationPolicy, ...]:
    return tuple(
        load_version(path, NotificationPolicy, InvalidNotificationPolicy) for path in sorted(directory.glob("2*.json"))
    )


def policy_at(instant: datetime, policies: tuple[NotificationPolicy, ...] | None = None) -> NotificationPolicy:
    return in_force_at(policies or load_policies(), instant, InvalidNotificationPolicy, "notification policy")


def render(text: str, values: dict[str, str]) -> str:
    return text.format_map(values)
