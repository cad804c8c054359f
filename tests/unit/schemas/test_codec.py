"""Envelopes through the codec: round trips and every way bytes can be bad."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.codec import decode_event, encode
from schemas.envelope import EventEnvelope
from schemas.errors import DecodeError


def test_event_round_trip_when_offset_has_seconds_keeps_the_instant() -> None:
    lmt = timezone(timedelta(minutes=17, seconds=30))  # e.g. Amsterdam local mean time
    envelope = EventEnvelope(
        event_id=uuid.uuid4(),
        type="instrument.resumed",
        version=1,
        aggregate_id="BTC-USD",
        sequence=1,
        occurred_at=datetime(1900, 1, 1, tzinfo=lmt),
        correlation_id=uuid.uuid4(),
        payload={},
    )

    decoded = decode_event(encode(envelope))

    assert decoded.occurred_at == datetime(1900, 1, 1, tzinfo=lmt)
    assert decoded.occurred_at.tzinfo is UTC


def test_decode_when_timestamp_overflows_in_utc_raises_invalid_envelope() -> None:
    data = (
        b'{"event_id":"6f1d2c4e-8a3b-4f5e-9c7d-2b1a0e9f8d7c","type":"t","version":1,'
        b'"aggregate_id":"a","sequence":1,"occurred_at":"0001-01-01T00:00:00+05:00",'
        b'"correlation_id":"6f1d2c4e-8a3b-4f5e-9c7d-2b1a0e9f8d7c","payload":{}}'
    )

    with pytest.raises(DecodeError) as caught:
        decode_event(data)

    assert caught.value.reason == "invalid-envelope"
    assert "occurred_at" in str(caught.value)
