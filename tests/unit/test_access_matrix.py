"""The role-by-action matrix names every action the complaints service takes, and the README shows it."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from services.complaints import api, attachments_api, erasure_api, incidents_api, inspections_api
from services.complaints.access import ACCESS
from tests.dashboard_queries import ROOT

# Each POST route, as the action the matrix names it by.
ROUTE_ACTIONS = {
    r"^/api/v1/halls$": "hall.register",
    r"^/api/v1/halls/\{hall_id\}/changes$": "hall.change",
    r"^/api/v1/customers/erasure$": "customer.erase",
    r"^/api/v1/complaints$": "complaint.register",
    r"^/api/v1/inspections$": "inspection.record",
    r"^/api/v1/complaints/\{complaint_id\}/(?P<step>[a-z-]+)$": "complaint.{step}",
    r"^/api/v1/rectification-orders/\{order_id\}/(?P<step>[a-z-]+)$": "rectification_order.{step}",
    r"^/api/v1/incidents$": "incident.open",
    r"^/api/v1/attachments$": "attachment.upload",
    r"^/api/v1/incidents/\{incident_id\}/children$": "incident.link",
    r"^/api/v1/incidents/\{incident_id\}/(?!children$)[a-z-]+$": "incident.act",
}


def route_actions() -> set[str]:
    actions = set()
    routers = (api.router, inspections_api.router, erasure_api.router, incidents_api.router, attachments_api.router)
    for route in [route for router in routers for route in router.routes]:
        if not isinstance(route, APIRoute) or "POST" not in (route.methods or ()) or "/public/" in route.path:
            continue
        [action] = [
            template.format(**match.groupdict())
            for pattern, template in ROUTE_ACTIONS.items()
            if (match := re.match(pattern, route.path))
        ]
        actions.add(action)
    return actions


def test_every_action_the_service_takes_is_in_the_matrix_and_nothing_else() -> None:
    assert set(ACCESS.actions) - {"complaint.see_contact"} == route_actions()


def test_the_readme_shows_the_matrix_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text()
    for action, roles in ACCESS.actions.items():
        assert f"| `{action}` | {', '.join(sorted(roles))} |" in readme, action
