"""Erasing a customer's personal data on request (PIPL art. 47): the data keys destroyed, the erasure
recorded on each complaint's timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.complaints.access import ACCESS
from services.complaints.api import application
from services.complaints.schemas import Erasure, ErasureRequest
from shared.auth import Caller
from shared.errors import ServiceError
from shared.openapi import error_responses

router = APIRouter(prefix="/api/v1")


class NoSuchCustomer(ServiceError):
    status_code = 404
    error_type = "not_found"
    field = ("body", "complaint_numbers")


@router.post(
    "/customers/erasure",
    response_model=Erasure,
    responses=error_responses(e404="No complaint with these numbers or phones in the caller's unit."),
)
def erase_customer(body: ErasureRequest, request: Request, caller: Caller) -> Erasure:
    """Destroys the data keys of the named complaints' customer data (admins; within their unit). From then
    on every read, the public query, rebuilds and replays show the customer as erased. Repeating it is
    harmless: complaints erased before are listed as such. 404 if nothing named is found in the caller's unit."""
    ACCESS.require(caller, "customer.erase")
    complaints = application(request)
    digests = [bytes.fromhex(digest) for digest in body.phone_digests]
    found = complaints.complaints_of(body.complaint_numbers, body.phones, digests, caller)
    if not found:
        raise NoSuchCustomer("no complaint with these numbers or phones in your organisation unit")
    outcome = Erasure(erased=[], already_erased=[])
    for complaint in found:
        erased_now = complaints.erase_customer(complaint, caller.subject, body.reason)
        (outcome.erased if erased_now else outcome.already_erased).append(complaint.number)
    return outcome
