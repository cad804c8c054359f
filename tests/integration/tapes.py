"""Generated event and command streams with an independently computed expected outcome."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.codec import encode
from schemas.envelope import CommandEnvelope, EventEnvelope, make_command, make_event
from schemas.instrument import (
    HaltInstrument,
    InstrumentChanges,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResumed,
    InstrumentUpdated,
    ResumeInstrument,
    UpdateInstrument,
)
from tests.integration.helpers import register_command, spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Expected:
    tick_size: Decimal = Decimal("0.01")
    status: str = "active"
    version: int = 0
    halt_reason: str | None = None


@dataclass
class EventTape:
    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    expected: dict[str, Expected] = field(default_factory=dict)


def event_tape(symbols: int, events_per_symbol: int, *, seed: int = 7) -> EventTape:
    """Events as the decider would write them, interleaved across symbols."""
    rng = random.Random(seed)
    tape = EventTape()
    streams: list[list[EventEnvelope]] = []
    for s in range(symbols):
        symbol = f"X{s:05d}"
        exp = Expected()
        stream: list[EventEnvelope] = []
        for n in range(1, events_per_symbol + 1):
            at = T0 + timedelta(seconds=n)
            if n == 1:
                payload = InstrumentRegistered(spec=spec(symbol))
            elif exp.status == "halted" and rng.random() < 0.5:
                payload = InstrumentResumed()
                exp.status, exp.halt_reason = "active", None
            elif exp.status == "active" and rng.random() < 0.2:
                payload = InstrumentHalted(reason=f"halt {n}")
                exp.status, exp.halt_reason = "halted", f"halt {n}"
            else:
                tick = Decimal(rng.randint(1, 1000)) / 100
                payload = InstrumentUpdated(changes=InstrumentChanges(tick_size=tick))
                exp.tick_size = tick
            exp.version = n
            cause = uuid.uuid4()
            stream.append(make_event(payload, aggregate_id=symbol, sequence=n, occurred_at=at,
                                     correlation_id=cause, causation_id=cause,
                                     event_id=uuid.uuid4()))
        tape.expected[symbol] = exp
        streams.append(stream)
    # Interleave streams while keeping each one in order.
    cursors = [0] * symbols
    live = list(range(symbols))
    while live:
        i = rng.choice(live)
        event = streams[i][cursors[i]]
        tape.records.append((event.aggregate_id.encode(), encode(event)))
        cursors[i] += 1
        if cursors[i] == len(streams[i]):
            live.remove(i)
    return tape


@dataclass
class CommandTape:
    commands: list[CommandEnvelope] = field(default_factory=list)
    accepted_events: dict[uuid.UUID, int] = field(default_factory=dict)


def command_tape(symbols: int, *, seed: int = 11) -> CommandTape:
    """Per symbol: register, update, halt, resume, and one re-sent (duplicate) command."""
    rng = random.Random(seed)
    tape = CommandTape()
    per_symbol: list[list[CommandEnvelope]] = []
    for s in range(symbols):
        symbol = f"C{s:05d}"
        now = datetime.now(UTC)
        cmds = [
            register_command(symbol),
            make_command(UpdateInstrument(changes=InstrumentChanges(tick_size=Decimal("0.5"))),
                         aggregate_id=symbol, command_id=uuid.uuid4(), issued_at=now),
            make_command(HaltInstrument(reason="test"), aggregate_id=symbol,
                         command_id=uuid.uuid4(), issued_at=now),
            make_command(ResumeInstrument(), aggregate_id=symbol, command_id=uuid.uuid4(),
                         issued_at=now),
        ]
        for c in cmds:
            tape.accepted_events[c.command_id] = 1
        cmds.append(cmds[rng.randrange(len(cmds))])  # a redelivered duplicate
        per_symbol.append(cmds)
    cursors = [0] * symbols
    live = list(range(symbols))
    while live:
        i = rng.choice(live)
        tape.commands.append(per_symbol[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(per_symbol[i]):
            live.remove(i)
    return tape
