"""REST reads of the projections."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from services.projections.timeline import Timeline, load_timeline
from shared.errors import ServiceError

router = APIRouter(prefix="/api/v1")


class ComplaintNotProjected(ServiceError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "complaint_id")


@router.get("/complaints/{complaint_id}/timeline", response_model=Timeline)
async def complaint_timeline(complaint_id: uuid.UUID, request: Request) -> Timeline:
    """Every event of the complaint, oldest first, as far as this projection has seen."""
    timeline = await load_timeline(request.app.state.pool, complaint_id)
    if timeline is None:
        raise ComplaintNotProjected(f"no events seen for complaint {complaint_id}")
    return timeline
