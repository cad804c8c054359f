"""Purchase commands, and the purchase saga: create -> Stripe Checkout Session -> open checkout.

Every step's command id is fixed by the purchase id and the step (`step`), and the purchase id
by the buyer's Idempotency-Key, so a retry of the same request replays the steps already
decided as duplicates and resumes at the first one that is not: a purchase left `pending` by
an unreachable Stripe is opened by the retry. Stripe gets its own idempotency key from the
purchase id (core.adapters.stripe_gateway), so a retry never opens a second session there.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from core.adapters.stripe_events import Ignored, Malformed, translate
from core.adapters.stripe_gateway import (
    CheckoutRequest,
    CheckoutSession,
    PaymentProviderError,
    PaymentProviderUnavailable,
)
from core.adapters.stripe_intake import PURCHASE_GRACE_S, Lookup, command_for, within
from core.domain.purchases import Purchase, PurchaseAggregate
from core.views.purchases import PurchasePublic
from core.views.tiers import TierView
from kernel.application import (
    Accepted,
    Channel,
    Command,
    CommandSender,
    Decided,
    Known,
    Pending,
    Rejected,
    dispatch,
)
from kernel.observability import get_logger
from schemas.envelope import CommandEnvelope, CommandPayload
from schemas.payment import CreatePurchase, GrantPurchase, OpenCheckout, PurchaseStatus
from schemas.registry import TypeRegistry

log = get_logger(__name__)

COMMANDS_TOPIC = "payment.commands"
AGGREGATE = PurchaseAggregate()
# Fixed forever: derives each step's command id from the purchase id, so a retry is a duplicate.
STEP_NAMESPACE = uuid.UUID("c8e2f5a1-7b3d-5e9c-a4f6-2d8b1e7c3a95")

ReadTier = Callable[[str], Awaitable[TierView | None]]
ReadPurchase = Callable[[str], Awaitable[PurchasePublic | None]]


class CheckoutGateway(Protocol):
    """What the saga needs of Stripe (core.adapters.stripe_gateway.StripeGateway)."""

    async def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession: ...


@dataclass(frozen=True, kw_only=True)
class BuyTier:
    """A buyer asks for a tier; `currency`, if given, is the one they expect to pay in."""

    purchase_id: str
    buyer: str
    tier_id: str
    currency: str | None = None


@dataclass(frozen=True, kw_only=True)
class GrantTier:
    """An admin gives `user_id` a tier without payment."""

    purchase_id: str
    admin: str
    user_id: str
    tier_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class TierRefused:
    """Refused before anything is sent: the tier cannot be sold as asked."""

    reason: Literal["tier-not-found", "tier-retired", "currency-mismatch"]
    detail: str


@dataclass(frozen=True, kw_only=True)
class UserUnknown:
    """A grant for a user the read model does not know."""

    user_id: str


@dataclass(frozen=True, kw_only=True)
class ProviderFailed:
    """Stripe was unreachable (`unavailable`) or refused the session: the purchase stays
    pending, and a retry with the same Idempotency-Key resumes it."""

    purchase_id: str
    unavailable: bool
    detail: str


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """Decided, but not as this attempt's own answer: an earlier attempt went further (the
    checkout was already opened, or paid), or the reply's events were no longer kept. The
    read model's row if it has one, else the state after the creation if known."""

    current: PurchasePublic | None
    created: Known[Purchase] | None


BuyOutcome = (Decided[Purchase] | Recorded | Rejected | Pending | TierRefused
              | ProviderFailed)
GrantOutcome = Decided[Purchase] | Recorded | Rejected | Pending | TierRefused | UserUnknown


def channel(registry: TypeRegistry) -> Channel[Purchase]:
    return Channel(topic=COMMANDS_TOPIC, aggregate=AGGREGATE, registry=registry)


def step(purchase_id: str, payload: CommandPayload, *, actor: str) -> Command[CommandPayload]:
    """One step of a purchase; its command id is fixed by the purchase and the step."""
    return Command(payload=payload, aggregate_id=purchase_id, actor=actor,
                   command_id=uuid.uuid5(STEP_NAMESPACE, f"{purchase_id}:{payload.TYPE}"))


async def _on_sale(read_tier: ReadTier, tier_id: str) -> TierView | TierRefused:
    tier = await read_tier(tier_id)
    if tier is None:
        return TierRefused(reason="tier-not-found", detail=f"no tier {tier_id!r}")
    if tier.status == "retired":
        return TierRefused(reason="tier-retired", detail=f"{tier_id!r} is no longer sold")
    return tier


async def buy(bus: CommandSender, registry: TypeRegistry, gateway: CheckoutGateway,
              request: BuyTier, *, read_tier: ReadTier,
              read_purchase: ReadPurchase) -> BuyOutcome:
    """The purchase saga: the tier's current terms copied into a purchase, a Checkout
    Session for its price, and the session recorded on the purchase."""
    tier = await _on_sale(read_tier, request.tier_id)
    if isinstance(tier, TierRefused):
        return tier
    terms = tier.terms
    if request.currency is not None and request.currency != terms.currency:
        return TierRefused(reason="currency-mismatch",
                           detail=f"{request.tier_id!r} is priced in {terms.currency}, "
                                  f"not {request.currency}")
    pid = request.purchase_id
    created = await dispatch(bus, channel(registry), step(pid, CreatePurchase(
        user_id=request.buyer, tier_id=tier.tier_id, tier_revision=tier.revision, terms=terms),
        actor=request.buyer), before=Known(state=AGGREGATE.initial(pid)))
    if isinstance(created, Rejected | Pending):
        return created
    try:
        session = await gateway.create_checkout_session(CheckoutRequest(
            purchase_id=pid, user_id=request.buyer, tier_id=tier.tier_id,
            tier_revision=tier.revision, product_name=terms.name,
            amount_minor=terms.price_minor, currency=terms.currency))
    except PaymentProviderUnavailable as exc:
        return ProviderFailed(purchase_id=pid, unavailable=True, detail=str(exc))
    except PaymentProviderError as exc:
        return ProviderFailed(purchase_id=pid, unavailable=False, detail=str(exc))
    after_create = created.known if isinstance(created, Decided) else None
    opened = await dispatch(bus, channel(registry), step(pid, OpenCheckout(
        checkout_session_id=session.id, checkout_url=session.url), actor=request.buyer),
        before=after_create or Known(state=AGGREGATE.initial(pid)))
    if isinstance(opened, Decided | Pending):
        return opened
    # Refused (opened or paid by an earlier attempt) or not rebuildable: what is recorded.
    return Recorded(current=await read_purchase(pid), created=after_create)


async def grant(bus: CommandSender, registry: TypeRegistry, request: GrantTier, *,
                read_tier: ReadTier, user_exists: Callable[[str], Awaitable[bool]],
                read_purchase: ReadPurchase) -> GrantOutcome:
    """A purchase granted by an admin, at the tier's current terms, with nothing to pay."""
    if not await user_exists(request.user_id):
        return UserUnknown(user_id=request.user_id)
    tier = await _on_sale(read_tier, request.tier_id)
    if isinstance(tier, TierRefused):
        return tier
    pid = request.purchase_id
    granted = await dispatch(bus, channel(registry), step(pid, GrantPurchase(
        user_id=request.user_id, tier_id=tier.tier_id, tier_revision=tier.revision,
        terms=tier.terms, reason=request.reason), actor=request.admin),
        before=Known(state=AGGREGATE.initial(pid)))
    if isinstance(granted, Accepted):
        return Recorded(current=await read_purchase(pid), created=None)
    return granted


async def submit(bus: CommandSender, command: CommandEnvelope) -> None:
    """Put a command on the log without waiting for its decision (Stripe's webhooks: durable
    is enough, and the command id of the Stripe event makes every redelivery one effect)."""
    await bus.send(COMMANDS_TOPIC, command, wait_ms=0)


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """What became of a verified Stripe event: a command on the log, nothing, or a dead
    letter."""

    event_id: str
    action: Literal["command-sent", "ignored", "dead-lettered"]
    purchase_id: str | None = None
    detail: str = ""


Park = Callable[[str, str], Awaitable[None]]  # (reason, detail): the body to dead letters


async def receive_stripe_event(bus: CommandSender, event: dict[str, Any], *,
                               find_purchase: Lookup, park: Park,
                               grace_s: float = PURCHASE_GRACE_S) -> Receipt:
    """A verified Stripe event as a payment command, sent without waiting for its decision.

    One we cannot attribute to a purchase the read model knows (within `grace_s` of
    projection lag), or whose fields make no valid command, is parked (`park`) for an
    operator to replay: never sent, since the decider would refuse it and keep that answer
    for the command id. Kafka errors propagate (the route answers 503: Stripe retries)."""
    outcome = translate(event)
    event_id = str(event.get("id", ""))
    if isinstance(outcome, Ignored):
        log.info("stripe webhook ignored", event_id=event_id, type=event.get("type"),
                 reason=outcome.reason)
        return Receipt(event_id=event_id, action="ignored", detail=outcome.reason)
    if isinstance(outcome, Malformed):
        await park("malformed", outcome.reason)
        return Receipt(event_id=event_id, action="dead-lettered", detail=outcome.reason)
    purchase_id = await within(find_purchase, outcome, grace_s=grace_s)
    if purchase_id is None:
        detail = "no purchase matches its metadata or payment intent"
        await park("unknown-purchase", detail)
        return Receipt(event_id=event_id, action="dead-lettered", detail=detail)
    await submit(bus, command_for(outcome, purchase_id))
    log.info("stripe webhook accepted", event_id=event_id, type=event.get("type"),
             purchase_id=purchase_id, command=outcome.command.TYPE)
    return Receipt(event_id=event_id, action="command-sent", purchase_id=purchase_id)


def status_of(state: Purchase) -> PurchaseStatus:
    """The status the read model shows (core.adapters.purchases_projection)."""
    if state.disputed:
        return "disputed"
    if state.refunded:
        return "refunded"
    match state.stage:
        case "pending" | "paid" | "granted":
            return state.stage
    raise ValueError(f"purchase {state.purchase_id} does not exist")


def public(known: Known[Purchase]) -> PurchasePublic:
    """The buyer's view of a decided purchase."""
    state = known.state
    assert state.user_id is not None and state.tier_id is not None and state.terms is not None
    assert known.created_at is not None and known.updated_at is not None
    return PurchasePublic(
        purchase_id=state.purchase_id, user_id=state.user_id, tier_id=state.tier_id,
        tier_revision=state.tier_revision,
        amount_minor=0 if state.stage == "granted" else state.terms.price_minor,
        currency=state.terms.currency, status=status_of(state),
        checkout_session_id=state.checkout_session_id, checkout_url=state.checkout_url,
        created_at=known.created_at, updated_at=known.updated_at, version=known.version)
