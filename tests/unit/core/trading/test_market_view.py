"""The account engine's view of the market: instruments folded whole, the newest tick of each,
and records met again after a rewind left alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.processors.market_view import MarketView
from kernel.log import LogRecord
from schemas import default_registry
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.errors import DecodeError
from schemas.instrument import InstrumentHalted, InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow

T0 = 1_796_000_000_000_000_000
BTC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                     tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"),
                     quote_currency="USD")


def _record(topic: str, offset: int, aggregate_id: str, payload: EventPayload, *,
            partition: int = 0) -> LogRecord:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{partition}/{offset}")
    env = make_event(payload, aggregate_id=aggregate_id, sequence=offset + 1,
                     occurred_at=datetime.fromtimestamp(T0 / 1e9, UTC),
                     correlation_id=event_id, causation_id=None, event_id=event_id)
    return LogRecord(topic, partition, offset, aggregate_id.encode(), encode(env))


def _ticks(offset: int, *prices: float) -> LogRecord:
    rows = tuple(TickRow(venue_ts_ns=T0 + i, received_ts_ns=T0 + i, price=p, size=1.0,
                         bid=p - 0.01, ask=p + 0.01) for i, p in enumerate(prices))
    return _record("market.ticks", offset, "BTC-USD",
                   MarketTicksPublished(instrument="BTC-USD", venue="simulator", ticks=rows))


def _view() -> MarketView:
    return MarketView(default_registry(), ticks_topic="market.ticks",
                      instruments_topic="instrument.events")


def test_instruments_fold_and_the_newest_tick_of_a_batch_is_the_quote() -> None:
    view = _view()
    assert view.instrument("BTC-USD") is None
    view.absorb(_record("instrument.events", 0, "BTC-USD", InstrumentRegistered(spec=BTC)))
    known = view.instrument("BTC-USD")
    assert known is not None and known.status == "active" and known.spec == BTC
    view.absorb(_record("instrument.events", 1, "BTC-USD", InstrumentHalted(reason="test")))
    halted = view.instrument("BTC-USD")
    assert halted is not None and halted.status == "halted"
    batch = view.absorb(_ticks(0, 100.0, 101.0))
    assert isinstance(batch, MarketTicksPublished)
    last = view.last_tick("BTC-USD")
    assert last is not None and last.row.price == 101.0 and last.at == ("market.ticks", 0, 0)


def test_a_record_met_again_after_a_rewind_changes_nothing() -> None:
    view = _view()
    view.absorb(_ticks(0, 100.0))
    view.absorb(_ticks(1, 105.0))
    assert view.absorb(_ticks(0, 100.0)) is None  # the consumer was rewound
    last = view.last_tick("BTC-USD")
    assert last is not None and last.row.price == 105.0


def test_an_unreadable_record_is_a_decode_error_for_the_dead_letters() -> None:
    view = _view()
    with pytest.raises(DecodeError):
        view.absorb(LogRecord("market.ticks", 0, 0, b"k", b"garbage"))
    with pytest.raises(DecodeError, match="does not read other"):
        view.absorb(_record("other", 0, "BTC-USD", InstrumentHalted(reason="x")))
    assert view.ticks == {} and view.instruments == {}
