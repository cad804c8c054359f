"""core.handlers.tiers: the answer after a command is what the catalogue will show."""

from __future__ import annotations

import uuid

import orjson
import pytest

from core.adapters.tiers_projection import Row, fold
from core.domain.tiers import TierAggregate
from core.handlers import tiers as handlers
from core.seeds import DEFAULT_TIERS
from core.views.tiers import TierView
from kernel.application import Command, Decided, Known, Outcome, Rejected
from kernel.projection import Applied
from schemas.envelope import CommandPayload
from schemas.tier import CreateTier, ReactivateTier, RetireTier, ReviseTier
from tests.support.deciding_bus import DecidingBus

TIER = "standard-50k"
TERMS = DEFAULT_TIERS[TIER]
CHEAPER = TERMS.model_copy(update={"price_minor": 27_900})


def bus() -> DecidingBus:
    return DecidingBus({handlers.COMMANDS_TOPIC: TierAggregate()})


def read_model(b: DecidingBus) -> TierView | None:
    row: Row | None = None
    for env in b.events_of(TIER):
        row, _ = fold(row, Applied(env, b.registry.event_payload(env)))
    if row is None:
        return None
    data = row._asdict()
    del data["name"]
    return TierView.model_validate({**data, "terms": orjson.loads(row.terms)})


def command(payload: CommandPayload) -> Command[CommandPayload]:
    return Command(payload=payload, aggregate_id=TIER, command_id=uuid.uuid4(),
                   actor="admin-1")


async def change(b: DecidingBus, payload: CommandPayload,
                 row: TierView | None = None) -> Outcome[object]:
    async def read() -> TierView | None:
        return row or read_model(b)
    return await handlers.change(b, b.registry, command(payload),  # type: ignore[arg-type]
                                 read=read)


@pytest.mark.asyncio
async def test_create_revise_retire_reactivate_answer_the_rows_the_catalogue_shows() -> None:
    b = bus()
    created = await handlers.create(b, b.registry, command(CreateTier(terms=TERMS)))  # type: ignore[arg-type]
    assert isinstance(created, Decided)
    assert handlers.public(created.known) == read_model(b)
    for payload in (ReviseTier(terms=CHEAPER), RetireTier(reason="replaced"),
                    ReviseTier(terms=TERMS), ReactivateTier()):
        outcome = await change(b, payload)
        assert isinstance(outcome, Decided), payload
        assert handlers.public(outcome.known) == read_model(b)
    final = read_model(b)
    assert final is not None and (final.revision, final.status) == (3, "active")


@pytest.mark.asyncio
async def test_the_same_terms_again_are_rejected_and_the_next_change_still_folds() -> None:
    b = bus()
    await handlers.create(b, b.registry, command(CreateTier(terms=TERMS)))  # type: ignore[arg-type]
    same = await change(b, ReviseTier(terms=TERMS))
    assert isinstance(same, Rejected) and same.reason == "terms-unchanged"
    # The refusal took sequence 2 on the log: the row the next change folds onto is at 2.
    retired = await change(b, RetireTier(reason="x"))
    assert isinstance(retired, Decided) and retired.version == 3
    assert handlers.public(retired.known) == read_model(b)


@pytest.mark.asyncio
async def test_the_public_row_reads_back_as_the_state_it_was_made_from() -> None:
    b = bus()
    await handlers.create(b, b.registry, command(CreateTier(terms=TERMS)))  # type: ignore[arg-type]
    retired = await change(b, RetireTier(reason="x"))
    assert isinstance(retired, Decided)
    newer = handlers.known_from(handlers.public(retired.known))
    assert isinstance(newer, Known) and newer.state == retired.state
