"""REST for purchases: buy a tier through Stripe Checkout, read your purchases, admin grants.

The purchase saga (create, Checkout Session, open checkout) is core.handlers.purchases'; these
routes parse, authorize, derive the purchase id from the Idempotency-Key and map its outcome.
If Stripe cannot be reached the purchase stays `pending` without a checkout URL; repeating
the request with the same Idempotency-Key resumes it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from core.adapters.stripe_gateway import StripeGateway
from core.entrypoints.http.deps import LIST_READS, BusDep, IdempotencyKey, RegistryDep
from core.handlers import purchases as handlers
from core.views.purchases import EXAMPLE_PURCHASE as PURCHASE_VIEW_EXAMPLE
from core.views.purchases import PurchasePublic, get_purchase, list_purchases
from core.views.tiers import TierView, get_tier
from core.views.users import get_user
from kernel.application import Decided, Pending, Rejected
from kernel.auth import Principal, access
from kernel.commands import command_id_for
from kernel.deps import ConnDep
from kernel.http import PROBLEM_SCHEMA, Problem, decode_cursor, encode_cursor
from kernel.ratelimit import rate_limited
from schemas.tier import TierCurrency, TierId

router = APIRouter(prefix="/purchases", tags=["purchases"])
grants_router = APIRouter(prefix="/admin/grants", tags=["admin"])

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


async def get_gateway(request: Request) -> StripeGateway:
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


# Refusals of the tier asked for, before anything is sent: (status, title).
TIER_REFUSALS = {"tier-not-found": (404, "Tier not found"),
                 "tier-retired": (409, "Tier retired"),
                 "currency-mismatch": (422, "Currency mismatch")}


def _pending(purchase_id: str) -> Problem:
    return Problem(503, "purchase-pending", "The purchase is not decided yet",
                   "retry with the same Idempotency-Key", headers={"Retry-After": "2"},
                   purchase_id=purchase_id)


def _tier_refused(refusal: handlers.TierRefused) -> Problem:
    status, title = TIER_REFUSALS[refusal.reason]
    return Problem(status, refusal.reason, title, refusal.detail)


def _pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


def _reads(pool: AsyncConnectionPool) -> tuple[handlers.ReadTier, handlers.ReadPurchase]:
    """Reads that borrow a connection each: none is held while Stripe is called."""

    async def tier(tier_id: str) -> TierView | None:
        async with pool.connection() as conn:
            return await get_tier(conn, tier_id)

    async def purchase(purchase_id: str) -> PurchasePublic | None:
        async with pool.connection() as conn:
            return await get_purchase(conn, purchase_id)

    return tier, purchase


def _recorded(outcome: handlers.Recorded, purchase_id: str) -> PurchasePublic:
    """What an earlier attempt recorded: the read model's row, else the created state."""
    if outcome.current is not None:
        return outcome.current
    if outcome.created is not None:
        return handlers.public(outcome.created)
    raise _pending(purchase_id)  # decided, but nowhere to be read yet: retry shortly


@router.post("", operation_id="createPurchase", status_code=201, response_model=PurchasePublic,
             summary="Buy a tier: opens a Stripe Checkout Session to pay at",
             responses={**ERRORS, 201: {"content": {"application/json": {
                 "example": EXAMPLE_PURCHASE}}}},
             dependencies=[Depends(rate_limited("purchases"))])
async def create_purchase(
    body: Annotated[PurchaseCreate, Body(examples=[{"tier_id": "starter-25k",
                                                    "currency": "USD"}])],
    principal: Buyer, bus: BusDep, registry: RegistryDep, request: Request,
    gateway: GatewayDep, response: Response, idempotency_key: IdempotencyKey = None,
) -> Any:
    purchase_id = str(command_id_for(idempotency_key, caller=principal.user_id,
                                     scope="purchase", body=body))
    read_tier, read_purchase = _reads(_pool(request))
    outcome = await handlers.buy(bus, registry, gateway, handlers.BuyTier(
        purchase_id=purchase_id, buyer=principal.user_id, tier_id=body.tier_id,
        currency=body.currency), read_tier=read_tier, read_purchase=read_purchase)
    match outcome:
        case handlers.TierRefused():
            raise _tier_refused(outcome)
        case Rejected():
            raise Problem(409, outcome.reason, "Purchase not created", outcome.detail,
                          purchase_id=purchase_id)
        case Pending():
            raise _pending(purchase_id)
        case handlers.ProviderFailed(unavailable=True):
            raise Problem(503, "payment-provider-unavailable", "Stripe is unreachable",
                          f"the purchase stays pending: {outcome.detail}",
                          headers={"Retry-After": "5"}, purchase_id=purchase_id)
        case handlers.ProviderFailed():
            raise Problem(502, "payment-provider-error", "Stripe refused the checkout",
                          f"the purchase stays pending: {outcome.detail}",
                          purchase_id=purchase_id)
    response.headers["Location"] = f"/purchases/{purchase_id}"
    if isinstance(outcome, Decided):
        return handlers.public(outcome.known)
    return _recorded(outcome, purchase_id)


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
    principal: Admin, bus: BusDep, registry: RegistryDep, request: Request,
    response: Response, idempotency_key: IdempotencyKey = None,
) -> Any:
    purchase_id = str(command_id_for(idempotency_key, caller=principal.user_id,
                                     scope="grant", body=body))
    read_tier, read_purchase = _reads(_pool(request))

    async def user_exists(user_id: str) -> bool:
        async with _pool(request).connection() as conn:
            return await get_user(conn, user_id) is not None

    outcome = await handlers.grant(bus, registry, handlers.GrantTier(
        purchase_id=purchase_id, admin=principal.user_id, user_id=str(body.user_id),
        tier_id=body.tier_id, reason=body.reason), read_tier=read_tier,
        user_exists=user_exists, read_purchase=read_purchase)
    match outcome:
        case handlers.UserUnknown():
            raise Problem(404, "user-not-found", "User not found",
                          f"no registered user {body.user_id}; a grant needs one")
        case handlers.TierRefused():
            raise _tier_refused(outcome)
        case Rejected():
            raise Problem(409, outcome.reason, "Grant not recorded", outcome.detail,
                          purchase_id=purchase_id)
        case Pending():
            raise _pending(purchase_id)
    response.headers["Location"] = f"/purchases/{purchase_id}"
    if isinstance(outcome, Decided):
        return handlers.public(outcome.known)
    return _recorded(outcome, purchase_id)
