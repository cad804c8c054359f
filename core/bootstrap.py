"""Builds the core service's processes (API, deciders, policy) for its manifest, and the seeds.

The projections are built by the kernel from the manifest (`core/manifest.py`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.config import CoreSettings as Settings
from core.domain.assessments import AssessmentAggregate
from core.domain.instruments import InstrumentAggregate
from core.domain.purchases import PurchaseAggregate
from core.domain.tiers import TierAggregate
from core.domain.users import (
    UserAggregate,
    email_problem,
    forget_command_id,
    normalise_email,
    password_problems,
    user_id,
)
from core.processors.account_engine import AccountEngine
from core.processors.assessment_policy import AssessmentPolicy
from core.processors.book_engine import BookEngine
from core.seeds import DEFAULT_INSTRUMENTS, DEFAULT_TIERS
from kernel.commands import CommandBus
from kernel.decider import DeciderRunner
from kernel.pg import make_pool
from schemas import default_registry
from schemas.envelope import make_command
from schemas.identity import ForgetUser, RegisterUser, Role
from schemas.instrument import RegisterInstrument
from schemas.payment import GrantPurchase
from schemas.replies import CommandReply
from schemas.tier import CreateTier

if TYPE_CHECKING:
    from fastapi import FastAPI

# The API, kernel.auth (FastAPI), the identity service and the credential store are imported
# where they are used: every worker process of the service imports this module, and they
# cost each of them ~0.9 s of CPU at start-up that most never use.

SEED_NAMESPACE = uuid.UUID("9d3c1b2a-4e5f-4a6b-8c7d-1e2f3a4b5c6d")


def api(settings: Settings) -> FastAPI:
    # Imported here: the workers' process (`propstream run group core-workers`) and the
    # seed never serve HTTP and start seconds sooner without the routers.
    from core.entrypoints.http.app import create_app

    return create_app(settings)


def instrument_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, InstrumentAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def tier_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, TierAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def payment_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, PurchaseAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def assessment_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, AssessmentAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def account_decider(settings: Settings) -> AccountEngine:
    """The account family's decider is the account engine: it trades as well (issue 11)."""
    return AccountEngine(settings, default_registry(),
                         max_quote_age_ms=settings.quote_max_age_ms,
                         mark_interval_ms=settings.equity_mark_interval_ms,
                         snapshot_every=settings.decider_snapshot_every)


def platform_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    from core.domain.platform import PlatformAggregate

    return DeciderRunner(settings, PlatformAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def book_decider(settings: Settings) -> BookEngine:
    """The book family's decider is the book engine: every instrument's order book."""
    return BookEngine(settings, default_registry(),
                      snapshot_every=settings.decider_snapshot_every)


def assessment_policy(settings: Settings) -> AssessmentPolicy:
    return AssessmentPolicy(settings, default_registry())


def user_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    from kernel.auth import ROLE_SCOPES  # with FastAPI: only this process needs it

    return DeciderRunner(settings, UserAggregate(ROLE_SCOPES), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


async def seed_instruments(settings: Settings, *, wait_ms: int = 60000) -> dict[str, str]:
    """Register the default instruments; command ids are fixed, so seeding twice is a no-op."""
    bus = CommandBus(settings, client_id="propstream-seed")
    await bus.start()
    try:
        results = await asyncio.gather(*(
            bus.send("instrument.commands", make_command(
                RegisterInstrument(spec=spec), aggregate_id=spec.symbol,
                command_id=uuid.uuid5(SEED_NAMESPACE, spec.symbol),
                issued_at=datetime.now(UTC), actor="seed"), wait_ms=wait_ms)
            for spec in DEFAULT_INSTRUMENTS))
    finally:
        await bus.stop()
    return {spec.symbol: _outcome(reply)
            for spec, reply in zip(DEFAULT_INSTRUMENTS, results, strict=True)}


async def seed_tiers(settings: Settings, *, wait_ms: int = 60000) -> dict[str, str]:
    """Create the default tiers; command ids are fixed, so seeding twice is a no-op, and a
    tier an admin has revised since keeps its revisions (seeding only ever creates)."""
    bus = CommandBus(settings, client_id="propstream-seed-tiers")
    await bus.start()
    try:
        results = await asyncio.gather(*(
            bus.send("tier.commands", make_command(
                CreateTier(terms=terms), aggregate_id=tier_id,
                command_id=uuid.uuid5(SEED_NAMESPACE, f"tier:{tier_id}"),
                issued_at=datetime.now(UTC), actor="seed"), wait_ms=wait_ms)
            for tier_id, terms in DEFAULT_TIERS.items()))
    finally:
        await bus.stop()
    return {tier_id: _outcome(reply)
            for tier_id, reply in zip(DEFAULT_TIERS, results, strict=True)}


def _outcome(reply: CommandReply | None, *, pending: str = "pending",
             duplicate: str = "already seeded") -> str:
    """What a seed or CLI command did, in words for the console."""
    if reply is None:
        return pending
    if reply.duplicate:
        return duplicate
    return reply.status if reply.status == "accepted" else str(reply.reason)


# Dev-only defaults, printed when used; they are in the source, so only a developer's
# loopback-only `dev` platform uses them, and anywhere else the seed needs the variables set.
DEV_SEED_PASSWORDS = {"admin": "dev admin password 1", "trader": "dev trader password 1"}
SEED_USERS: tuple[tuple[str, str, Role], ...] = (
    ("admin@propstream.dev", "Dev admin", "admin"),
    ("trader@propstream.dev", "Demo trader", "trader"),
)


async def register_user(settings: Settings, *, email: str, password: str, display_name: str,
                        role: Role, wait_ms: int = 60000) -> str:
    """Register a user with any role through the bus (the CLI's way, not the API's).

    Like the API, it is the identity service here: the password hash and the data key go to
    PostgreSQL first, the command carries only the credential's id and sealed values. The
    command id derives from the email, so running it twice registers once (the second
    run's unused credential is deleted again).
    """
    email = normalise_email(email)
    problem = email_problem(email)
    if problem is not None:
        raise ValueError(f"the email is not acceptable ({problem})")
    broken = password_problems(password)
    if broken:
        raise ValueError(f"the password breaks: {', '.join(broken)}")
    from core.adapters.credentials import CredentialStore
    from core.domain.passwords import Passwords
    from kernel.sealing import KeyWrapper, seal

    password_hash = await asyncio.to_thread(Passwords().hash, password)
    uid = user_id(email)
    pool = make_pool(settings, max_size=2)
    await pool.open(wait=True, timeout=30)
    bus = CommandBus(settings, client_id="propstream-users-cli")
    try:
        store = CredentialStore(pool, KeyWrapper(settings.data_key_secret.get_secret_value()))
        await store.ensure_tables(settings)
        data_key = await store.data_key(uid, create=True)
        if data_key is None:
            raise ValueError(f"{email} is being forgotten; try again")
        credential_id = await store.add_password(uid, password_hash, data_key=data_key)
        await bus.start()
        try:
            reply = await bus.send("user.commands", make_command(
                RegisterUser(email=seal(data_key, subject=uid, field="email", text=email),
                             display_name=seal(data_key, subject=uid, field="display_name",
                                               text=display_name),
                             credential_id=credential_id, role=role),
                aggregate_id=uid, command_id=uuid.uuid5(SEED_NAMESPACE, f"user:{email}"),
                issued_at=datetime.now(UTC), actor="cli"), wait_ms=wait_ms)
        finally:
            await bus.stop()
        if reply is not None and (reply.duplicate or reply.status != "accepted"):
            await store.discard_password(credential_id)
    finally:
        await pool.close()
    return _outcome(reply, pending="pending (is the user decider running?)",
                    duplicate="already created")


async def forget_user(settings: Settings, *, target: str, wait_ms: int = 60000) -> str:
    """Erase a user's data key, credentials and key secrets, end their sessions, and record
    `user.forgotten` (the CLI's twin of POST /users/{id}/forget; idempotent)."""
    from kernel.http import make_cache

    pool = make_pool(settings, max_size=2)
    cache = make_cache(settings, max_connections=4)
    await pool.open(wait=True, timeout=30)
    from core.identity import Identity

    identity = Identity(settings, cache, pool)
    bus = CommandBus(settings, client_id="propstream-users-cli")
    try:
        await identity.credentials.ensure_tables(settings)
        await identity.credentials.forget(target)
        await identity.end_sessions(target)
        await bus.start()
        try:
            reply = await bus.send("user.commands", make_command(
                ForgetUser(), aggregate_id=target, command_id=forget_command_id(target),
                issued_at=datetime.now(UTC), actor="cli"), wait_ms=wait_ms)
        finally:
            await bus.stop()
    finally:
        identity.stop()
        await pool.close()
        await cache.aclose()
    return _outcome(reply, pending="erased; pending on the log (is the user decider running?)",
                    duplicate="already forgotten")


async def seed_users(settings: Settings, say: Callable[[str], None]) -> dict[str, str]:
    """Create the dev admin and the demo trader (idempotent)."""
    given = {"admin": settings.seed_admin_password, "trader": settings.seed_trader_password}
    out: dict[str, str] = {}
    for email, name, role in SEED_USERS:
        secret = given[role]
        if secret is None and not (settings.env == "dev" and settings.developer_loopback):
            out[email] = f"skipped: set PROPSTREAM_SEED_{role.upper()}_PASSWORD"
            continue
        password = secret.get_secret_value() if secret else DEV_SEED_PASSWORDS[role]
        if secret is None:
            say(f"{email}: dev password {password!r} (PROPSTREAM_SEED_{role.upper()}_PASSWORD "
                "sets another)")
        out[email] = await register_user(settings, email=email, password=password,
                                         display_name=name, role=role)
    return out


DEMO_GRANT = ("trader@propstream.dev", "starter-10k")


async def seed_demo_grant(settings: Settings, *, wait_ms: int = 60000) -> str:
    """Give the demo trader the starter tier without a card: the offline demo's purchase.

    Recorded as `payment.purchase-granted` with the seed as its actor; the policy then creates
    the assessment and opens the funded account, exactly as after a paid checkout. The
    purchase id is fixed, so seeding twice grants once.
    """
    email, tier_id = DEMO_GRANT
    purchase_id = str(uuid.uuid5(SEED_NAMESPACE, f"grant:{email}:{tier_id}"))
    bus = CommandBus(settings, client_id="propstream-seed-grant")
    await bus.start()
    try:
        reply = await bus.send("payment.commands", make_command(
            GrantPurchase(user_id=user_id(email), tier_id=tier_id, tier_revision=1,
                          terms=DEFAULT_TIERS[tier_id], reason="offline demo (seed)"),
            aggregate_id=purchase_id, command_id=uuid.uuid5(SEED_NAMESPACE, f"grant:{purchase_id}"),
            issued_at=datetime.now(UTC), actor="seed"), wait_ms=wait_ms)
    finally:
        await bus.stop()
    return _outcome(reply)
