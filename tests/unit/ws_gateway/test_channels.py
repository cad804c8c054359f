"""Every channel family is declared with its topic and access rule, and the rule is enforced
for every family: owner yes, another trader, anonymous and a scope-less key no, admin yes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from pydantic import ValidationError

from kernel.auth import ROLE_SCOPES, Principal
from schemas.assessment import AssessmentCompleted
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.simulation import SimulationCompleted, SimulationProgressed
from schemas.topics import topic
from schemas.ws import CHANNELS
from ws_gateway.adapters.accounts import Owners
from ws_gateway.config import GatewaySettings
from ws_gateway.domain.protocol import (
    PRIVATE_FAMILIES,
    PUBLIC_FAMILIES,
    Channel,
    ProtocolError,
    parse_channel,
)
from ws_gateway.domain.records import decode_event
from ws_gateway.entrypoints.server import Connection

OWNER, OTHER = str(uuid.uuid4()), str(uuid.uuid4())
KEY = str(uuid.uuid4())


class _Owners:
    """The directory as the gateway sees it: every private key belongs to OWNER."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def owner(self, access: str, key: str) -> str | None:
        assert access in Owners._OWNER, f"no owner lookup for access rule {access!r}"
        self.asked.append((access, key))
        return OWNER if key == KEY else None


def _connection(principal: Principal | None) -> Connection:
    gateway = SimpleNamespace(settings=GatewaySettings(), owners=_Owners())
    return Connection(gateway, conn=None, client=None, principal=principal,  # type: ignore[arg-type]
                      expires_at=None, session="s")


def _trader(user: str, scopes: frozenset[str] = ROLE_SCOPES["trader"]) -> Principal:
    return Principal(user_id=user, role="trader", via="token", scopes=scopes)


def _may_read(principal: Principal | None, family: str, key: str = KEY) -> ProtocolError | None:
    return asyncio.run(_connection(principal).may_read(Channel(family, key)))


def test_every_channel_family_reads_a_catalogue_topic_and_declares_a_known_rule() -> None:
    for family in CHANNELS.values():
        assert topic(family.topic).kind in ("events", "stream"), family
        assert family.access == "public" or family.access in Owners._OWNER, family
        assert family.description
    assert {"account", "assessment", "simulation"} == PRIVATE_FAMILIES


@pytest.mark.parametrize("family", sorted(PRIVATE_FAMILIES))
def test_a_private_channel_is_read_by_its_owner_and_admins_only(family: str) -> None:
    assert _may_read(_trader(OWNER), family) is None
    refused = _may_read(_trader(OTHER), family)
    assert refused is not None and refused.code == "forbidden"
    missing = _may_read(_trader(OWNER), family, key=str(uuid.uuid4()))  # no such row (yet)
    assert missing is not None and missing.code == "forbidden"
    anonymous = _may_read(None, family)
    assert anonymous is not None and anonymous.code == "unauthenticated"
    keyless = _may_read(_trader(OWNER, scopes=frozenset({"account:trade"})), family)
    assert keyless is not None and keyless.code == "forbidden"
    admin = Principal(user_id=OTHER, role="admin", via="token", scopes=ROLE_SCOPES["admin"])
    assert _may_read(admin, family) is None


def test_the_owner_lookup_follows_the_family_rule() -> None:
    conn = _connection(_trader(OWNER))
    for family in sorted(PRIVATE_FAMILIES):
        asyncio.run(conn.may_read(Channel(family, KEY)))
    asked = conn.gateway.owners.asked  # type: ignore[attr-defined]
    # account and simulation ask who owns the account; assessment who owns the assessment
    assert asked == [("account-owner", KEY), ("assessment-owner", KEY)]


@pytest.mark.parametrize("family", sorted(PUBLIC_FAMILIES))
def test_public_channels_need_no_owner(family: str) -> None:
    conn = _connection(None)
    assert asyncio.run(conn.may_read(Channel(family, "BTC-USD"))) is None
    assert conn.gateway.owners.asked == []  # type: ignore[attr-defined]  # nobody looked up


def test_private_channel_names_take_a_uuid_and_nothing_else() -> None:
    for family in PRIVATE_FAMILIES:
        assert parse_channel(f"{family}:{KEY.upper()}") == Channel(family, KEY)
        assert parse_channel(f"{family}:BTC-USD") is None
        assert parse_channel(f"{family}:{KEY}:x") is None
    assert parse_channel(f"rules:{KEY}") is None


def _record(payload: EventPayload, aggregate: str) -> bytes:
    """The record as it is on the log: the platform's own envelope and codec."""
    return encode(make_event(payload, aggregate_id=aggregate, sequence=1,
                             occurred_at=datetime(2026, 12, 6, 8, tzinfo=UTC),
                             correlation_id=uuid.uuid4(), causation_id=None,
                             event_id=uuid.uuid4()))


def test_private_events_go_to_the_channel_of_their_aggregate() -> None:
    assessment, account = str(uuid.uuid4()), str(uuid.uuid4())
    completed = AssessmentCompleted(phase="challenge", account_id=uuid.UUID(account),
                                    outcome="failed", rule="daily-loss", digest="0" * 64,
                                    final=True, at_ns=1)
    event = decode_event(_record(completed, assessment), 7, family="assessment", public=False)
    # the payload names the account, yet the channel is the assessment's (its record key)
    assert event is not None and event.channel == f"assessment:{assessment}"
    assert event.seq == 7 * 1024
    progressed = SimulationProgressed(run_id=uuid.uuid4(), account_id=uuid.UUID(account),
                                      paths_done=10, paths_total=100)
    sim = decode_event(_record(progressed, account), 3, family="simulation", public=False)
    assert sim is not None and sim.channel == f"simulation:{account}"
    message = orjson.loads(sim.message)
    assert (message["event"], message["data"]["paths_done"]) == ("simulation.progressed", 10)
    assert decode_event(b"not json", 1, family="account", public=False) is None


def test_simulation_progress_cannot_pass_its_total() -> None:
    with pytest.raises(ValidationError, match="exceeds paths_total"):
        SimulationProgressed(run_id=uuid.uuid4(), account_id=uuid.uuid4(), paths_done=101,
                             paths_total=100)
    with pytest.raises(ValidationError):
        SimulationCompleted(run_id=uuid.uuid4(), account_id=uuid.uuid4(), paths=10,
                            summary={"p_pass": float("nan")})
