"""How the users view answers sealed values: opened with the key, null without it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.views.users import _public
from kernel.sealing import new_data_key, seal

UID = "0b3c8f0e-52d1-5c6a-9f1e-2a7d4b8c9e10"
KEY = new_data_key()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(**overrides: Any) -> dict[str, Any]:
    return {"user_id": UID, "email": seal(KEY, subject=UID, field="email", text="a@b.co"),
            "display_name": seal(KEY, subject=UID, field="display_name", text="Ada"),
            "role": "trader", "registered_at": T0, "updated_at": T0, "version": 1,
            "forgotten_at": None, **overrides}


def test_sealed_values_open_with_the_users_key() -> None:
    user = _public(row(), KEY)
    assert (user.email, user.display_name) == ("a@b.co", "Ada")


def test_without_the_key_the_values_read_as_null() -> None:
    user = _public(row(), None)
    assert (user.email, user.display_name) == (None, None)


def test_values_under_a_key_that_is_gone_read_as_null_not_as_an_error() -> None:
    user = _public(row(), new_data_key())
    assert (user.email, user.display_name) == (None, None)


def test_legacy_values_read_as_is_and_forgotten_rows_as_null() -> None:
    assert _public(row(email="p0:a@b.co", display_name="p0:Ada"), None).email == "a@b.co"
    forgotten = _public(row(email=None, display_name=None, forgotten_at=T0), KEY)
    assert (forgotten.email, forgotten.forgotten_at) == (None, T0)
