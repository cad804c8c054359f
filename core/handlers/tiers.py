"""Tier commands: create, revise, retire, reactivate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.domain.tiers import Tier, TierAggregate
from core.views.tiers import TierView
from kernel.application import (
    Channel,
    Command,
    CommandSender,
    Known,
    Outcome,
    dispatch,
    dispatch_change,
)
from schemas.registry import TypeRegistry
from schemas.tier import CreateTier, ReactivateTier, RetireTier, ReviseTier

COMMANDS_TOPIC = "tier.commands"
AGGREGATE = TierAggregate()
Change = ReviseTier | RetireTier | ReactivateTier
ReadRow = Callable[[], Awaitable[TierView | None]]


def channel(registry: TypeRegistry) -> Channel[Tier]:
    return Channel(topic=COMMANDS_TOPIC, aggregate=AGGREGATE, registry=registry)


async def create(bus: CommandSender, registry: TypeRegistry,
                 command: Command[CreateTier]) -> Outcome[Tier]:
    """Create a tier at revision 1: the state after it is folded from nothing."""
    return await dispatch(bus, channel(registry), command,
                          before=Known(state=AGGREGATE.initial(command.aggregate_id)))


async def change(bus: CommandSender, registry: TypeRegistry, command: Command[Change], *,
                 read: ReadRow) -> Outcome[Tier]:
    """Revise, retire or reactivate: the state before is the read model's row (`read`)."""

    async def known() -> Known[Tier] | None:
        row = await read()
        return None if row is None else known_from(row)

    return await dispatch_change(bus, channel(registry), command, read=known)


def known_from(row: TierView) -> Known[Tier]:
    """The aggregate's state as the read model's row shows it."""
    return Known(state=Tier(tier_id=row.tier_id, status=row.status, revision=row.revision,
                            terms=row.terms),
                 version=row.version, created_at=row.created_at, updated_at=row.updated_at)


def public(known: Known[Tier]) -> TierView:
    """The catalogue's view of a decided tier (created: its terms are known)."""
    state = known.state
    assert state.terms is not None and state.status != "absent"
    assert known.created_at is not None and known.updated_at is not None
    return TierView(tier_id=state.tier_id, status=state.status, revision=state.revision,
                    terms=state.terms, created_at=known.created_at, updated_at=known.updated_at,
                    version=known.version)
