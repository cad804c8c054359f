"""The tick publisher's fast encoder writes what the pydantic contract reads back."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from market_data.adapters.publisher import TickPublisher, encode_batch, tick_problem
from market_data.domain.ticks import Tick
from schemas import default_registry
from schemas.codec import decode_event
from schemas.market import MarketTicksPublished

REGISTRY = default_registry()
NS = 1_795_000_000_000_000_000

prices = st.floats(min_value=1e-8, max_value=1e9, allow_nan=False, allow_infinity=False)
ticks = st.builds(
    Tick, instrument=st.just("BTC-USD"), venue=st.just("binance"), price=prices,
    size=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    venue_ts_ns=st.integers(min_value=NS, max_value=NS + 10**12),
    received_ts_ns=st.integers(min_value=NS, max_value=NS + 10**12),
    bid=st.none() | prices, ask=st.none() | prices,
    side=st.none() | st.sampled_from(["buy", "sell"]),
    trade_id=st.none() | st.text(min_size=1, max_size=20),
)


@given(st.lists(ticks, min_size=1, max_size=50), st.integers(min_value=1, max_value=2**62))
def test_encoded_batch_decodes_to_the_same_ticks(batch: list[Tick], sequence: int) -> None:
    data = encode_batch("BTC-USD", "binance", batch, sequence=sequence,
                        occurred_at=datetime(2026, 11, 23, tzinfo=UTC))
    envelope = decode_event(data)
    payload = REGISTRY.event_payload(envelope)
    assert isinstance(payload, MarketTicksPublished)
    assert envelope.sequence == sequence and envelope.aggregate_id == "BTC-USD"
    assert [(r.price, r.size, r.bid, r.ask, r.side, r.trade_id, r.venue_ts_ns)
            for r in payload.ticks] == [
        (t.price, t.size, t.bid, t.ask, t.side, t.trade_id, t.venue_ts_ns) for t in batch]


def _tick(price: float = 100.0, trade_id: str | None = "1", **kw: object) -> Tick:
    base = {"instrument": "BTC-USD", "venue": "binance", "price": price, "size": 1.0,
            "venue_ts_ns": NS, "received_ts_ns": NS, "trade_id": trade_id}
    base.update(kw)
    return Tick(**base)  # type: ignore[arg-type]


def test_bad_ticks_are_refused_with_a_reason() -> None:
    assert tick_problem(_tick(price=math.nan)) == "invalid-price"
    assert tick_problem(_tick(price=0.0)) == "invalid-price"
    assert tick_problem(_tick(price=-1.0)) == "invalid-price"
    assert tick_problem(_tick(size=-1.0)) == "invalid-size"
    assert tick_problem(_tick(bid=math.inf)) == "invalid-quote"
    assert tick_problem(_tick(venue_ts_ns=5)) == "timestamp-out-of-range"
    assert tick_problem(_tick()) is None


def test_publisher_drops_repeated_trade_ids_and_seals_full_batches() -> None:
    publisher = TickPublisher(producer=None, topic="t", max_ticks=3)  # type: ignore[arg-type]
    refused = publisher.publish([_tick(trade_id=str(i % 4), venue_ts_ns=NS + i)
                                 for i in range(8)] + [_tick(price=math.nan)])
    assert [reason for _, reason in refused] == ["invalid-price"]
    assert publisher.duplicates == 4
    assert publisher.published == 3  # one full batch of 3 sealed; 1 tick still pending
    assert len(publisher._ready) == 1


def test_sequences_are_monotonic_per_instrument_even_for_equal_times() -> None:
    publisher = TickPublisher(producer=None, topic="t", max_ticks=1)  # type: ignore[arg-type]
    publisher.publish([_tick(trade_id=str(i)) for i in range(3)])  # all at the same ns
    sequences = [decode_event(v).sequence for _, v in publisher._ready]
    assert sequences == sorted(set(sequences)) and len(sequences) == 3
