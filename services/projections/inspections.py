"""Inspections and rectification orders as lists: `GET /api/v1/inspections`, `GET /api/v1/rectification-orders`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from services.projections.cursors import encode_cursor
from shared.clock import period_of
from shared.consumer import Connection
from shared.contracts import InspectionRecordedV1, IntegrationEvent, RectificationOrderOpenedV1
from shared.organisation import OrgUnit

InspectionType = Literal["mystery_shopper", "third_party", "cross_inspection", "self_check"]
OrderStatus = Literal["open", "communicated", "acknowledged", "rectified", "closed"]
# How each step moves an order's status, as the order itself does (`RectificationOrder`); an appeal does not.
ORDER_STATUS_AFTER: dict[str, OrderStatus] = {
    "RectificationOrderCommunicated": "communicated",
    "RectificationOrderAcknowledged": "acknowledged",
    "RectificationOrderRectified": "rectified",
    "RectificationOrderVerified": "closed",
    "RectificationOrderRejected": "acknowledged",
}


class InspectionSummary(BaseModel):
    id: uuid.UUID
    hall_id: str
    inspection_type: str
    inspector: str
    score: int
    max_score: int
    findings: int
    period: str
    at: datetime


class OrderSummary(BaseModel):
    id: uuid.UUID
    inspection_id: uuid.UUID
    hall_id: str
    item_id: str
    points: int
    deadline: datetime
    period: str
    status: str
    last_step: str
    at: datetime


class InspectionPage(BaseModel):
    items: list[InspectionSummary]
    next_cursor: str | None


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None


async def record_inspection(connection: Connection, event: IntegrationEvent) -> None:
    inspection = event.payload
    assert isinstance(inspection, InspectionRecordedV1)
    await connection.execute(
        """
        INSERT INTO inspection_summaries VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (inspection_id) DO NOTHING
        """,
        event.envelope.aggregate_id,
        inspection.hall_id,
        inspection.inspection_type,
        inspection.inspector,
        inspection.score,
        inspection.max_score,
        len(inspection.findings),
        period_of(inspection.at),
        inspection.at,
    )


async def record_order(connection: Connection, event: IntegrationEvent) -> None:
    order = event.payload
    assert isinstance(order, RectificationOrderOpenedV1)
    await connection.execute(
        """
        INSERT INTO order_summaries VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10)
        ON CONFLICT (order_id) DO NOTHING
        """,
        event.envelope.aggregate_id,
        order.inspection_id,
        order.hall_id,
        order.item_id,
        order.points,
        order.deadline,
        period_of(order.at),
        event.event_type,
        order.at,
        event.envelope.aggregate_version,
    )


async def record_order_step(connection: Connection, event: IntegrationEvent) -> None:
    """Applies a step only if it is newer than what the summary shows."""
    envelope = event.envelope
    await connection.execute(
        """
        UPDATE order_summaries SET status = COALESCE($2, status), last_step = $3, version = $4
        WHERE order_id = $1 AND version < $4
        """,
        envelope.aggregate_id,
        ORDER_STATUS_AFTER.get(envelope.event_type),
        envelope.event_type,
        envelope.aggregate_version,
    )


async def _page(
    pool: asyncpg.Pool,
    table: str,
    id_column: str,
    scope: OrgUnit,
    filters: dict[str, Any],
    limit: int,
    cursor: tuple[datetime, uuid.UUID] | None,
) -> tuple[list[asyncpg.Record], str | None]:
    """Newest first, keyset-paged, only rows of halls within `scope`; `filters` are column equalities."""
    arguments: list[Any] = []
    conditions = ["TRUE"]
    for column, segment in zip(("h.province", "h.city", "t.hall_id"), scope.path, strict=False):
        arguments.append(segment)
        conditions.append(f"{column} = ${len(arguments)}")
    for column, value in filters.items():
        if value is not None:
            arguments.append(value)
            conditions.append(f"t.{column} = ${len(arguments)}")
    if cursor is not None:
        arguments += list(cursor)
        conditions.append(f"(t.at, t.{id_column}) < (${len(arguments) - 1}, ${len(arguments)})")
    arguments.append(limit + 1)
    rows = await pool.fetch(
        f"""
        SELECT t.* FROM {table} t JOIN halls h ON h.hall_id = t.hall_id
        WHERE {" AND ".join(conditions)}
        ORDER BY t.at DESC, t.{id_column} DESC LIMIT ${len(arguments)}
        """,  # noqa: S608 - only constants and placeholders are interpolated
        *arguments,
    )
    next_cursor = encode_cursor(rows[limit - 1]["at"], rows[limit - 1][id_column]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor


async def list_inspections(
    pool: asyncpg.Pool,
    scope: OrgUnit,
    limit: int,
    cursor: tuple[datetime, uuid.UUID] | None,
    **filters: Any,
) -> InspectionPage:
    rows, next_cursor = await _page(pool, "inspection_summaries", "inspection_id", scope, filters, limit, cursor)
    fields = [name for name in InspectionSummary.model_fields if name != "id"]
    items = [InspectionSummary(id=row["inspection_id"], **{name: row[name] for name in fields}) for row in rows]
    return InspectionPage(items=items, next_cursor=next_cursor)


async def list_orders(
    pool: asyncpg.Pool,
    scope: OrgUnit,
    limit: int,
    cursor: tuple[datetime, uuid.UUID] | None,
    **filters: Any,
) -> OrderPage:
    rows, next_cursor = await _page(pool, "order_summaries", "order_id", scope, filters, limit, cursor)
    fields = [name for name in OrderSummary.model_fields if name != "id"]
    return OrderPage(
        items=[OrderSummary(id=row["order_id"], **{name: row[name] for name in fields}) for row in rows],
        next_cursor=next_cursor,
    )
