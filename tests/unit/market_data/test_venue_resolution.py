"""A venue's resolution becomes the `instrument.resolve` core decides: source the venue, time
the venue's, and one command id per venue, instrument and outcome (a resend is a duplicate)."""

from __future__ import annotations

from datetime import UTC, datetime

from market_data.domain.venues.common import Resolution
from market_data.services.venues import resolve_command
from schemas import default_registry
from schemas.codec import decode_command, encode
from schemas.instrument import ResolveInstrument

AT_NS = 1_796_000_000_123_456_789


def test_a_venue_resolution_is_a_resolve_command_for_its_instrument() -> None:
    command = resolve_command(Resolution("PM-FEDCUT-JAN26-NO", 1, "polymarket", AT_NS))
    payload = default_registry().command_payload(decode_command(encode(command)))
    assert command.aggregate_id == "PM-FEDCUT-JAN26-NO"
    assert payload == ResolveInstrument(
        outcome=1, source="polymarket",
        resolved_at=datetime(2026, 11, 30, 0, 53, 20, 123456, tzinfo=UTC))


def test_the_same_resolution_sent_again_is_the_same_command() -> None:
    one = resolve_command(Resolution("K-1", 0, "kalshi", AT_NS))
    again = resolve_command(Resolution("K-1", 0, "kalshi", AT_NS + 5_000_000_000))
    other = resolve_command(Resolution("K-1", 1, "kalshi", AT_NS))
    assert one.command_id == again.command_id != other.command_id
