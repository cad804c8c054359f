"""Instrument commands: register, update, halt, resume, resolve."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.domain.instruments import Instrument, InstrumentAggregate
from core.views.instruments import InstrumentPublic
from kernel.application import (
    Channel,
    Command,
    CommandSender,
    Known,
    Outcome,
    dispatch,
    dispatch_change,
)
from schemas.instrument import (
    HaltInstrument,
    InstrumentSpec,
    RegisterInstrument,
    ResolveInstrument,
    ResumeInstrument,
    UpdateInstrument,
)
from schemas.registry import TypeRegistry

COMMANDS_TOPIC = "instrument.commands"
AGGREGATE = InstrumentAggregate()
Change = UpdateInstrument | HaltInstrument | ResumeInstrument | ResolveInstrument
ReadRow = Callable[[], Awaitable[InstrumentPublic | None]]


def channel(registry: TypeRegistry) -> Channel[Instrument]:
    return Channel(topic=COMMANDS_TOPIC, aggregate=AGGREGATE, registry=registry)


async def register(bus: CommandSender, registry: TypeRegistry,
                   command: Command[RegisterInstrument]) -> Outcome[Instrument]:
    """Register an instrument: the state after it is folded from nothing."""
    return await dispatch(bus, channel(registry), command,
                          before=Known(state=AGGREGATE.initial(command.aggregate_id)))


async def change(bus: CommandSender, registry: TypeRegistry, command: Command[Change], *,
                 read: ReadRow) -> Outcome[Instrument]:
    """Update, halt, resume or resolve: the state before is the read model's row (`read`)."""

    async def known() -> Known[Instrument] | None:
        row = await read()
        return None if row is None else known_from(row)

    return await dispatch_change(bus, channel(registry), command, read=known)


def known_from(row: InstrumentPublic) -> Known[Instrument]:
    """The aggregate's state as the read model's row shows it."""
    spec = InstrumentSpec(symbol=row.symbol, venue=row.venue, asset_class=row.asset_class,
                          tick_size=row.tick_size, lot_size=row.lot_size,
                          quote_currency=row.quote_currency, trading_hours=row.trading_hours,
                          description=row.description,
                          commission_per_unit=row.commission_per_unit,
                          commission_rate=row.commission_rate,
                          slippage_ticks=row.slippage_ticks)
    state = Instrument(symbol=row.symbol, spec=spec, status=row.status,
                       halt_reason=row.halt_reason, outcome=row.outcome,
                       resolution_source=row.resolution_source, resolved_at=row.resolved_at)
    return Known(state=state, version=row.version, created_at=row.registered_at,
                 updated_at=row.updated_at)


def public(known: Known[Instrument]) -> InstrumentPublic:
    """The public DTO of a decided instrument (registered: its spec is known)."""
    state, spec = known.state, known.state.spec
    assert spec is not None and state.status != "unregistered"
    assert known.created_at is not None and known.updated_at is not None
    return InstrumentPublic(
        symbol=spec.symbol, venue=spec.venue, asset_class=spec.asset_class,
        tick_size=spec.tick_size, lot_size=spec.lot_size, quote_currency=spec.quote_currency,
        trading_hours=spec.trading_hours, description=spec.description, status=state.status,
        halt_reason=state.halt_reason, version=known.version, registered_at=known.created_at,
        updated_at=known.updated_at, commission_per_unit=spec.commission_per_unit,
        commission_rate=spec.commission_rate, slippage_ticks=spec.slippage_ticks,
        outcome=state.outcome, resolution_source=state.resolution_source,
        resolved_at=state.resolved_at)
