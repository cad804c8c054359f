"""Envelopes through the codec: round trips and every way bytes can be bad."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from schemas.codec import decode_event, encode
from schemas.envelope import EventEnvelope


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
