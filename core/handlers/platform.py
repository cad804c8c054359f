"""The platform-wide trading switch from the API: halt or resume trading for every account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kernel.application import Accepted, Command, CommandSender, Pending, Rejected, send
from schemas.platform import HaltTrading, ResumeTrading, TradingHalted, TradingResumed
from schemas.registry import TypeRegistry

COMMANDS_TOPIC = "platform.commands"


@dataclass(frozen=True, kw_only=True)
class Switched:
    """Decided: `halted` is the platform after it; `changed` False when it already was so."""

    command_id: uuid.UUID
    halted: bool
    changed: bool
    reason: str


async def switch(bus: CommandSender, registry: TypeRegistry,
                 command: Command[HaltTrading | ResumeTrading], *,
                 wait_ms: int | None = None) -> Switched | Accepted | Rejected | Pending:
    """Halt or resume trading platform-wide; the account engine obeys it for every account."""
    outcome = await send(bus, COMMANDS_TOPIC, registry, command, wait_ms=wait_ms)
    if not isinstance(outcome, Accepted) or outcome.facts is None:
        return outcome
    halting = isinstance(command.payload, HaltTrading)
    wanted = TradingHalted if halting else TradingResumed
    return Switched(command_id=command.command_id, halted=halting,
                    changed=any(isinstance(f.payload, wanted) for f in outcome.facts),
                    reason=command.payload.reason)
