"""Sealing, erasing and masking a customer's personal data."""

from __future__ import annotations

import uuid

import pytest

from services.complaints.personal_data import (
    CustomerData,
    MasterKey,
    Undecryptable,
    legacy_sealed,
    mask_identifiers,
    seal,
    unseal,
)

KEY = MasterKey(b"unit-tests-personal-data-key-of-32-bytes")


def test_mobiles_and_resident_ids_are_masked_and_other_digit_runs_left_alone() -> None:
    text = "call 13912345678 or +8613912345678; ID 44030519900307123X; order 2139123456789; fee 1300"
    assert mask_identifiers(text) == (
        "call 139******** or +86139********; ID 440***************; order 2139123456789; fee 1300"
    )


def test_names_given_are_masked_but_a_single_character_is_not() -> None:
    assert mask_identifiers("欧阳娜娜 and 王 came", ("欧阳娜娜", "王")) == "欧*** and 王 came"


def test_sealed_data_opens_with_its_own_key_and_subject_only() -> None:
    subject = uuid.uuid4()
    data_key, wrapped = KEY.new_data_key(subject)
    data = CustomerData("张三", "13812345678", "张三 typed this")
    sealed = seal(data_key, subject, data)

    assert "张三" not in sealed and "13812345678" not in sealed
    assert unseal(KEY.unwrap(subject, wrapped), subject, sealed) == data
    assert unseal(None, subject, sealed) is None  # the key destroyed
    with pytest.raises(Undecryptable):
        unseal(data_key, uuid.uuid4(), sealed)  # another complaint's sealed data
    with pytest.raises(Undecryptable):
        MasterKey(b"another-personal-data-key-of-32-bytes").unwrap(subject, wrapped)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(Undecryptable):
        unseal(data_key, subject, tampered)


def test_customer_data_stored_before_sealing_stays_readable() -> None:
    assert unseal(None, uuid.uuid4(), legacy_sealed("李四", "13700000000")) == CustomerData("李四", "13700000000")


def test_phone_digests_are_keyed() -> None:
    other = MasterKey(b"another-personal-data-key-of-32-bytes")
    assert KEY.phone_digest("13812345678") == KEY.phone_digest("13812345678") != other.phone_digest("13812345678")


def test_a_master_key_is_long_enough() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey(b"short")
