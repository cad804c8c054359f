"""core.handlers.users: user commands are accepted with their version, never folded (their
replies are redacted)."""

from __future__ import annotations

import uuid

import pytest

from core.domain.users import UserAggregate
from core.handlers import users as handlers
from kernel.application import Accepted, Command, Rejected
from kernel.auth import ROLE_SCOPES
from schemas.envelope import CommandPayload
from schemas.identity import ChangeUserRole, RegisterUser, user_id_for_email
from tests.support.deciding_bus import DecidingBus

UID = str(user_id_for_email("ada@example.com"))


def command(payload: CommandPayload, actor: str = UID) -> Command[CommandPayload]:
    return Command(payload=payload, aggregate_id=UID, command_id=uuid.uuid4(), actor=actor)


@pytest.mark.asyncio
async def test_a_registration_is_accepted_with_its_redacted_events_only() -> None:
    b = DecidingBus({handlers.COMMANDS_TOPIC: UserAggregate(ROLE_SCOPES)})
    outcome = await handlers.submit(b, command(RegisterUser(
        email="p0:ada@example.com", display_name="p0:Ada", credential_id=uuid.uuid4())))
    assert isinstance(outcome, Accepted) and outcome.version == 1 and outcome.facts is None
    (event,) = outcome.reply.events
    assert event["type"] == "user.registered"
    assert "email" not in event["payload"] and "display_name" not in event["payload"]


@pytest.mark.asyncio
async def test_a_user_command_refused_carries_the_reason() -> None:
    b = DecidingBus({handlers.COMMANDS_TOPIC: UserAggregate(ROLE_SCOPES)})
    outcome = await handlers.submit(b, command(ChangeUserRole(role="analyst"), actor="admin"))
    assert isinstance(outcome, Rejected) and outcome.reason == "user-not-registered"
