"""A customer's personal data, readable only while its complaint's data key exists (crypto-shredding).

The customer's name and phone, and the description as they typed it, are sealed with AES-GCM under a data
key of the complaint's own; events hold only the sealed text. Data keys are kept wrapped by the master key
(`PERSONAL_DATA_KEY`, a Kubernetes Secret; a KMS in production) in the complaints service's `customer_keys`
table, beside a keyed digest of the phone (HMAC-SHA256) by which a customer's complaints are found: `DataKeys`,
kept by `repositories.PostgresDataKeys` (`InMemoryDataKeys` in the use-case tests). Erasing destroys the
wrapped key: every copy of the events, in the store, a backup, a rebuild or a topic, is noise from then on.

Free text is masked before it is stored or published: mobile numbers, resident ID numbers and, in a
complaint's description, the customer's own name (`mask_identifiers`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventsourcing.persistence import IntegrityError

SEALED_PREFIX = "aesgcm1:"
# Customer data of complaints registered before sealing: readable without a key, and so not erasable by one.
LEGACY_PREFIX = "plain:"
ERASED = "erased"
NONCE_BYTES = 12

# A Chinese mobile number (1, then 3-9, then nine digits; perhaps after +86) or an 18-character resident ID,
# not inside a longer run of digits.
MOBILE = re.compile(r"(?<!\d)((?:\+?86[- ]?)?1[3-9]\d)\d{8}(?!\d)")
RESIDENT_ID = re.compile(r"(?<!\d)\d{17}[\dXx](?![\dXx])")


def mask_identifiers(text: str, names: Sequence[str] = ()) -> str:
    """`text` with mobile numbers (138********), resident IDs (110***************) and each of `names` (张**)
    masked. Mobile numbers keep their carrier prefix, never the last four digits that verify a customer."""
    text = RESIDENT_ID.sub(lambda match: match.group()[:3] + "*" * 15, text)
    text = MOBILE.sub(lambda match: match.group(1) + "*" * 8, text)
    for name in names:
        if len(name) >= 2:  # one character is too common to mask alone
            text = text.replace(name, name[:1] + "*" * (len(name) - 1))
    return text


@dataclass(frozen=True)
class CustomerData:
    name: str
    phone: str
    description: str | None = None  # as the customer gave it, when masking changed it
    email: str | None = None  # for notifications, if the customer gave one
    wechat_openid: str | None = None  # the customer's id with the operator's WeChat account, if given


class Undecryptable(Exception):
    """Sealed data that this key did not seal, or that was altered."""


class MasterKey:
    """Wraps data keys and digests phones; both keys are derived from one secret of at least 32 bytes."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("PERSONAL_DATA_KEY must hold at least 32 bytes")
        self._wrapping = AESGCM(_derive(secret, b"wrap data keys"))
        self._digesting = _derive(secret, b"digest phones")

    def new_data_key(self, subject: uuid.UUID) -> tuple[bytes, bytes]:
        """A fresh data key for the subject, and the same key wrapped for storing."""
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        return key, nonce + self._wrapping.encrypt(nonce, key, subject.bytes)

    def unwrap(self, subject: uuid.UUID, wrapped: bytes) -> bytes:
        try:
            return self._wrapping.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], subject.bytes)
        except Exception as error:
            raise Undecryptable(f"the data key of {subject} was not wrapped by this master key") from error

    def phone_digest(self, phone: str) -> bytes:
        """The keyed digest by which a customer's complaints are found."""
        return self.keyed_digest(f"phone:{phone}")

    def keyed_digest(self, text: str) -> bytes:
        """HMAC-SHA256: no one without the key can compute it, so no one can find `text` by trying guesses."""
        return hmac.new(self._digesting, text.encode(), hashlib.sha256).digest()


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


def seal(data_key: bytes, subject: uuid.UUID, data: CustomerData) -> str:
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(astuple(data), ensure_ascii=False).encode()
    return SEALED_PREFIX + base64.b64encode(nonce + AESGCM(data_key).encrypt(nonce, plain, subject.bytes)).decode()


def legacy_sealed(name: str, phone: str) -> str:
    """The form that customer data stored before sealing takes when read (the complaint's upcast)."""
    return LEGACY_PREFIX + json.dumps([name, phone, None], ensure_ascii=False)


def unseal(data_key: bytes | None, subject: uuid.UUID, sealed: str) -> CustomerData | None:
    """The customer's data, or None once their key is destroyed."""
    if sealed.startswith(LEGACY_PREFIX):
        return CustomerData(*json.loads(sealed.removeprefix(LEGACY_PREFIX)))
    if data_key is None:
        return None
    raw = base64.b64decode(sealed.removeprefix(SEALED_PREFIX))
    try:
        plain = AESGCM(data_key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], subject.bytes)
    except Exception as error:
        raise Undecryptable(f"the customer data of {subject} does not open with its key") from error
    return CustomerData(*json.loads(plain))


@dataclass(frozen=True)
class DataKey:
    subject: uuid.UUID  # the complaint
    wrapped: bytes
    phone_digest: bytes
    # The complaint's receipt, number and hall: a customer's repeat complaints within a window are found here
    # and named without loading them.
    received_at: datetime
    number: str
    hall_code: str


@dataclass(frozen=True)
class CustomersComplaint:
    """One of a customer's complaints, as `customer_keys` knows it."""

    subject: uuid.UUID
    number: str
    hall_code: str
    received_at: datetime


@dataclass(frozen=True)
class PhoneHistory:
    """A customer's complaints received in a window: how many, and the newest of them."""

    count: int
    newest: list[CustomersComplaint]


class DataKeys(Protocol):
    """Where wrapped data keys are kept. A destroyed key is gone: `wrapped` answers None for it."""

    def wrapped(self, subject: uuid.UUID) -> bytes | None: ...

    def subjects_of_phone(self, phone_digest: bytes) -> list[uuid.UUID]: ...

    async def history_of_phone(
        self, phone_digest: bytes, received_from: datetime, received_until: datetime, limit: int
    ) -> PhoneHistory:
        """The complaints of the customer with this phone received in the window (ends included): their count
        and the newest `limit`, newest first. On the event loop: registration asks it of every complaint."""
        ...

    def others_of_customer(
        self,
        subject: uuid.UUID,
        limit: int,
        received_from: datetime | None = None,
        received_until: datetime | None = None,
    ) -> list[CustomersComplaint]:
        """The newest `limit` other complaints of this complaint's customer (received in the window, if one is
        given), newest first; none once the customer is erased."""
        ...

    def numbered(self, number: str) -> uuid.UUID | None:
        """The complaint given this number with its key; a destroyed key's number stays."""
        ...

    def destroy(self, subjects: Sequence[uuid.UUID], at: datetime) -> list[uuid.UUID]:
        """Destroys the keys; returns the subjects whose key existed until now."""
        ...

    def note_closed(self, subject: uuid.UUID, closed_at: datetime | None) -> None:
        """When the complaint closed (None: reopened), for the retention period."""
        ...

    def closed_before(self, instant: datetime, limit: int) -> list[uuid.UUID]:
        """Complaints closed before `instant` whose key still exists."""
        ...


class InMemoryDataKeys:
    """For the use-case tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[uuid.UUID, dict[str, Any]] = {}

    def add(self, keys: Sequence[DataKey]) -> None:
        """Adds the keys of subjects without one; raises IntegrityError, adding none, if a number is taken."""
        with self._lock:
            taken = {row["complaint"].number for row in self._rows.values()}
            numbers = [key.number for key in keys if key.subject not in self._rows]
            if len(set(numbers)) < len(numbers) or not taken.isdisjoint(numbers):
                raise IntegrityError("a complaint number is taken")
            for key in keys:
                self._rows.setdefault(
                    key.subject,
                    {
                        "wrapped": key.wrapped,
                        "phone": key.phone_digest,
                        "complaint": CustomersComplaint(key.subject, key.number, key.hall_code, key.received_at),
                        "closed_at": None,
                    },
                )

    def wrapped(self, subject: uuid.UUID) -> bytes | None:
        row = self._rows.get(subject)
        return row["wrapped"] if row else None

    def subjects_of_phone(self, phone_digest: bytes) -> list[uuid.UUID]:
        return [subject for subject, row in self._rows.items() if row["phone"] == phone_digest]

    def _of_phone(
        self, phone_digest: bytes, received_from: datetime | None, received_until: datetime | None
    ) -> list[CustomersComplaint]:
        found = [
            row["complaint"]
            for row in self._rows.values()
            if row["phone"] == phone_digest
            and (received_from is None or row["complaint"].received_at >= received_from)
            and (received_until is None or row["complaint"].received_at <= received_until)
        ]
        return sorted(found, key=lambda c: (c.received_at, c.subject), reverse=True)

    async def history_of_phone(
        self, phone_digest: bytes, received_from: datetime, received_until: datetime, limit: int
    ) -> PhoneHistory:
        found = self._of_phone(phone_digest, received_from, received_until)
        return PhoneHistory(len(found), found[:limit])

    def others_of_customer(
        self,
        subject: uuid.UUID,
        limit: int,
        received_from: datetime | None = None,
        received_until: datetime | None = None,
    ) -> list[CustomersComplaint]:
        row = self._rows.get(subject)
        if row is None or row["phone"] is None:
            return []
        others = self._of_phone(row["phone"], received_from, received_until)
        return [other for other in others if other.subject != subject][:limit]

    def numbered(self, number: str) -> uuid.UUID | None:
        return next((subject for subject, row in self._rows.items() if row["complaint"].number == number), None)

    def destroy(self, subjects: Sequence[uuid.UUID], at: datetime) -> list[uuid.UUID]:
        destroyed = []
        with self._lock:
            for subject in subjects:
                row = self._rows.get(subject)
                if row and row["wrapped"] is not None:
                    row.update(wrapped=None, phone=None)
                    destroyed.append(subject)
        return destroyed

    def note_closed(self, subject: uuid.UUID, closed_at: datetime | None) -> None:
        if row := self._rows.get(subject):
            row["closed_at"] = closed_at

    def closed_before(self, instant: datetime, limit: int) -> list[uuid.UUID]:
        due = [
            subject
            for subject, row in self._rows.items()
            if row["wrapped"] is not None and row["closed_at"] is not None and row["closed_at"] < instant
        ]
        return due[:limit]
