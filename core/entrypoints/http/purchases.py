"""REST for purchases: buy a tier through Stripe Checkout, read your purchases, admin grants.

A purchase is decided on the log before Stripe hears of it: `payment.create-purchase` (the
terms of the tier's current revision, copied), then a Checkout Session, then
`payment.open-checkout`. If Stripe cannot be reached the purchase stays `pending` without a
checkout URL; repeating the request with the same Idempotency-Key resumes it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from core.adapters.stripe_gateway import (
    CheckoutRequest,
    PaymentProviderError,
    PaymentProviderUnavailable,
    StripeGateway,
)
from core.entrypoints.http.deps import LIST_READS, BusDep, IdempotencyKey
from core.views.purchases import EXAMPLE_PURCHASE as PURCHASE_VIEW_EXAMPLE
from core.views.purchases import PurchasePublic, get_purchase, list_purchases
from core.views.tiers import TierView, get_tier
from core.views.users import get_user
from kernel.auth import Principal, access
from kernel.commands import CommandBus, command_id_for
from kernel.deps import ConnDep
from kernel.http import PROBLEM_SCHEMA, Problem, decode_cursor, encode_cursor
from kernel.ratelimit import rate_limited
from schemas.envelope import CommandPayload, make_command
from schemas.payment import CreatePurchase, GrantPurchase, OpenCheckout
from schemas.replies import CommandReply
from schemas.tier import TierCurrency, TierId

router = APIRouter(prefix="/purchases", tags=["purchases"])
grants_router = APIRouter(prefix="/admin/grants", tags=["admin"])

COMMANDS_TOPIC = "payment.commands"
# Fixed forever: derives each step's command id from the purchase id, so a retry is a duplicate.
STEP_NAMESPACE = uuid.UUID("c8e2f5a1-7b3d-5e9c-a4f6-2d8b1e7c3a95")
PurchaseIdPath = Annotated[uuid.UUID, Path(description="the purchase id",
                                            examples=["5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"])]

# The answer to POST /purchases: the read model's example, as it stands before payment.
EXAMPLE_PURCHASE = {**PURCHASE_VIEW_EXAMPLE, "status": "pending",
                    "updated_at": PURCHASE_VIEW_EXAMPLE["created_at"], "version": 2}


class PurchaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier_id: TierId
    currency: TierCurrency | None = Field(
        default=None, description="the currency the buyer expects; refused if not the tier's")


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    tier_id: TierId
    reason: str = Field(min_length=1, max_length=200, examples=["conference demo"])


class PurchasePage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [PURCHASE_VIEW_EXAMPLE], "next_cursor": "eyJwdXJjaGFzZV9pZCI6ICI1ZjBjIn0"}]})

    items: list[PurchasePublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


def get_gateway(request: Request) -> StripeGateway:
    gateway: StripeGateway = request.app.state.stripe
    return gateway


GatewayDep = Annotated[StripeGateway, Depends(get_gateway)]
# A trader buys and reads their own purchases; an admin (scope admin) reads everyone's.
Buyer = Annotated[Principal, access("trader", scope="account:trade")]
Reader = Annotated[Principal, access("trader", "admin",
                                     scope={"trader": "account:read", "admin": "admin"})]
Admin = Annotated[Principal, access("admin", scope="admin")]
ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM_SCHEMA for s in (400, 401, 403, 404, 409, 413, 422, 429, 502, 503)
}


async def send_step(bus: CommandBus, purchase_id: str, payload: CommandPayload, *,
                    actor: str) -> CommandReply:
    """Send one step of a purchase; its command id is fixed by the purchase and the step."""
    command_id = uuid.uuid5(STEP_NAMESPACE, f"{purchase_id}:{payload.TYPE}")
    reply = await bus.send(COMMANDS_TOPIC, make_command(
        payload, aggregate_id=purchase_id, command_id=command_id, issued_at=datetime.now(UTC),
        actor=actor))
    if reply is None:
        raise Problem(503, "purchase-pending", "The purchase is not decided yet",
                      "retry with the same Idempotency-Key", headers={"Retry-After": "2"},
                      purchase_id=purchase_id)
    return reply


async def _current_tier(conn: psycopg.AsyncConnection, tier_id: str) -> TierView:
    tier = await get_tier(conn, tier_id)
    if tier is None:
        raise Problem(404, "tier-not-found", "Tier not found", f"no tier {tier_id!r}")
    if tier.status == "retired":
        raise Problem(409, "tier-retired", "Tier retired", f"{tier_id!r} is no longer sold")
    return tier


def _from_events(reply: CommandReply, body: dict[str, Any]) -> dict[str, Any]:
    """The purchase as its decided events left it (the read model may not show it yet)."""
    for event in reply.events:
        payload = event["payload"]
        if event["type"] in ("payment.purchase-created", "payment.purchase-granted"):
            granted = event["type"] == "payment.purchase-granted"
            body.update(
                purchase_id=event["aggregate_id"], user_id=payload["user_id"],
                tier_id=payload["tier_id"], tier_revision=payload["tier_revision"],
                amount_minor=0 if granted else payload["amount_minor"],
                currency=payload["terms"]["currency"],
                status="granted" if granted else "pending", created_at=event["occurred_at"])
        elif event["type"] == "payment.checkout-opened":
            body.update(checkout_session_id=payload["checkout_session_id"],
                        checkout_url=payload["checkout_url"])
        body.update(version=event["sequence"], updated_at=event["occurred_at"])
    return body


@router.post("", operation_id="createPurchase", status_code=201, response_model=PurchasePublic,
             summary="Buy a tier: opens a Stripe Checkout Session to pay at",
             responses={**ERRORS, 201: {"content": {"application/json": {
                 "example": EXAMPLE_PURCHASE}}}},
             dependencies=[Depends(rate_limited("purchases"))])
async def create_purchase(
    body: Annotated[PurchaseCreate, Body(examples=[{"tier_id": "starter-25k",
                                                    "currency": "USD"}])],
    principal: Buyer, bus: BusDep, request: Request,
    gateway: GatewayDep, response: Response, idempotency_key: IdempotencyKey = None,
) -> Any:
    # A connection only around reads: none is held while Stripe is called.
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        tier = await _current_tier(conn, body.tier_id)
    terms = tier.terms
    if body.currency is not None and body.currency != terms.currency:
        raise Problem(422, "currency-mismatch", "Currency mismatch",
                      f"{body.tier_id!r} is priced in {terms.currency}, not {body.currency}")
    purchase_id = str(command_id_for(idempotency_key, caller=principal.user_id,
                                     scope="purchase", body=body))
    created = await send_step(bus, purchase_id, CreatePurchase(
        user_id=principal.user_id, tier_id=tier.tier_id, tier_revision=tier.revision,
        terms=terms), actor=principal.user_id)
    if created.status == "rejected":
        raise Problem(409, created.reason or "purchase-exists", "Purchase not created",
                      created.detail or "", purchase_id=purchase_id)
    out = _from_events(created, {"checkout_session_id": None, "checkout_url": None})
    response.headers["Location"] = f"/purchases/{purchase_id}"
    try:
        session = await gateway.create_checkout_session(CheckoutRequest(
            purchase_id=purchase_id, user_id=principal.user_id, tier_id=tier.tier_id,
            tier_revision=tier.revision, product_name=terms.name,
            amount_minor=terms.price_minor, currency=terms.currency))
    except PaymentProviderUnavailable as exc:
        raise Problem(503, "payment-provider-unavailable", "Stripe is unreachable",
                      f"the purchase stays pending: {exc}", headers={"Retry-After": "5"},
                      purchase_id=purchase_id) from None
    except PaymentProviderError as exc:
        raise Problem(502, "payment-provider-error", "Stripe refused the checkout",
                      f"the purchase stays pending: {exc}", purchase_id=purchase_id) from None
    opened = await send_step(bus, purchase_id, OpenCheckout(
        checkout_session_id=session.id, checkout_url=session.url), actor=principal.user_id)
    if opened.status == "accepted":
        return _from_events(opened, out)
    # Opened by an earlier attempt of this request: answer with what that attempt recorded.
    async with pool.connection() as conn:
        current = await get_purchase(conn, purchase_id)
    return current if current is not None else out


@router.get("", operation_id="listPurchases", summary="Your purchases (admins: everyone's)",
            response_model=PurchasePage,
            responses={s: PROBLEM_SCHEMA for s in (400, 401, 422, 429)},
            dependencies=[LIST_READS])
async def list_all(
    principal: Reader, conn: ConnDep,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    user_id: Annotated[uuid.UUID | None, Query(description="admins only: one user's")] = None,
) -> PurchasePage:
    if principal.role == "admin":
        owner = None if user_id is None else str(user_id)
    else:
        owner = principal.user_id  # a filter naming someone else still shows only your own
    after = decode_cursor(cursor, keys=("after",))["after"] if cursor else None
    if after is not None and not isinstance(after, str):
        raise Problem(400, "invalid-cursor", "The cursor is not valid")
    items = await list_purchases(conn, user_id=owner, after=after, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor({"after": items[-1].purchase_id}) if more and items else None
    return PurchasePage(items=items, next_cursor=next_cursor)


@router.get("/{purchase_id}", operation_id="getPurchase", summary="One purchase",
            response_model=PurchasePublic,
            responses={s: PROBLEM_SCHEMA for s in (401, 404, 422)})
async def get_one(purchase_id: PurchaseIdPath, principal: Reader,
                  conn: ConnDep) -> PurchasePublic:
    found = await get_purchase(conn, str(purchase_id))
    # Another user's purchase is answered exactly like a missing one: no existence leak.
    if found is None or (principal.role != "admin" and found.user_id != principal.user_id):
        raise Problem(404, "purchase-not-found", "Purchase not found",
                      f"no purchase {purchase_id} of yours")
    return found


@grants_router.post("", operation_id="grantPurchase", status_code=201,
                    response_model=PurchasePublic,
                    summary="Give a user a tier without payment (recorded as a grant)",
                    responses={**ERRORS, 201: {"content": {"application/json": {
                        "example": {**EXAMPLE_PURCHASE, "status": "granted", "amount_minor": 0,
                                    "checkout_session_id": None, "checkout_url": None}}}}},
                    dependencies=[Depends(rate_limited("admin-grants"))])
async def grant(
    body: Annotated[GrantCreate, Body(examples=[{
        "user_id": "00000000-0000-4000-8000-000000000001", "tier_id": "starter-25k",
        "reason": "conference demo"}])],
    principal: Admin, bus: BusDep, conn: ConnDep,
    response: Response, idempotency_key: IdempotencyKey = None,
) -> Any:
    if await get_user(conn, str(body.user_id)) is None:
        raise Problem(404, "user-not-found", "User not found",
                      f"no registered user {body.user_id}; a grant needs one")
    tier = await _current_tier(conn, body.tier_id)
    purchase_id = str(command_id_for(idempotency_key, caller=principal.user_id,
                                     scope="grant", body=body))
    reply = await send_step(bus, purchase_id, GrantPurchase(
        user_id=str(body.user_id), tier_id=tier.tier_id, tier_revision=tier.revision,
        terms=tier.terms, reason=body.reason), actor=principal.user_id)
    if reply.status == "rejected":
        raise Problem(409, reply.reason or "purchase-exists", "Grant not recorded",
                      reply.detail or "", purchase_id=purchase_id)
    response.headers["Location"] = f"/purchases/{purchase_id}"
    return _from_events(reply, {"checkout_session_id": None, "checkout_url": None})

