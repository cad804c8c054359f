"""Sealed values open only under their key, for their subject and field; wrapped keys too."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.sealing import (
    KeyWrapper,
    SealError,
    legacy,
    new_data_key,
    open_sealed,
    seal,
)

KEY = new_data_key()
ADA = "0b3c8f0e-52d1-5c6a-9f1e-2a7d4b8c9e10"
BOB = "1c4d9f1f-63e2-5d7b-8f2a-3b8e5c9d0f21"


@given(st.text(max_size=300))
def test_seal_then_open_gives_the_text_back(text: str) -> None:
    sealed = seal(KEY, subject=ADA, field="email", text=text)
    assert open_sealed(KEY, subject=ADA, field="email", value=sealed) == text


def test_sealed_value_carries_no_plaintext_and_differs_each_time() -> None:
    one = seal(KEY, subject=ADA, field="email", text="ada@example.com")
    two = seal(KEY, subject=ADA, field="email", text="ada@example.com")
    assert one != two and one.startswith("s1:")
    assert "ada" not in one and "example" not in one


def test_a_value_moved_to_another_user_does_not_open() -> None:
    sealed = seal(KEY, subject=ADA, field="email", text="ada@example.com")
    with pytest.raises(SealError):
        open_sealed(KEY, subject=BOB, field="email", value=sealed)


def test_a_value_moved_to_another_field_does_not_open() -> None:
    sealed = seal(KEY, subject=ADA, field="email", text="ada@example.com")
    with pytest.raises(SealError):
        open_sealed(KEY, subject=ADA, field="display_name", value=sealed)


def test_a_value_does_not_open_under_another_key() -> None:
    sealed = seal(KEY, subject=ADA, field="email", text="ada@example.com")
    with pytest.raises(SealError):
        open_sealed(new_data_key(), subject=ADA, field="email", value=sealed)


def test_a_tampered_value_does_not_open() -> None:
    sealed = seal(KEY, subject=ADA, field="email", text="ada@example.com")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealError):
        open_sealed(KEY, subject=ADA, field="email", value=flipped)


def test_without_the_key_a_sealed_value_reads_as_none() -> None:
    sealed = seal(KEY, subject=ADA, field="email", text="ada@example.com")
    assert open_sealed(None, subject=ADA, field="email", value=sealed) is None


def test_a_legacy_value_opens_as_is_with_or_without_a_key() -> None:
    assert open_sealed(None, subject=ADA, field="email", value=legacy("a@b.co")) == "a@b.co"
    assert open_sealed(KEY, subject=BOB, field="x", value=legacy("a@b.co")) == "a@b.co"


def test_a_value_in_no_known_form_is_refused() -> None:
    with pytest.raises(SealError):
        open_sealed(KEY, subject=ADA, field="email", value="ada@example.com")


def test_wrapped_key_unwraps_only_for_its_subject_and_secret() -> None:
    wrapper = KeyWrapper("secret one")
    wrapped = wrapper.wrap(KEY, subject=ADA)
    assert KEY not in wrapped
    assert wrapper.unwrap(wrapped, subject=ADA) == KEY
    with pytest.raises(SealError):
        wrapper.unwrap(wrapped, subject=BOB)
    with pytest.raises(SealError):
        KeyWrapper("secret two").unwrap(wrapped, subject=ADA)
