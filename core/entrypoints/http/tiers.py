"""REST for the tier catalogue: anyone may browse active tiers; admins manage them.

Changes are commands decided on Kafka by the tier decider, each carrying the admin's user id
as its actor; reads come from the `tiers` projection.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from core.domain.rules import terms_contradictions
from core.domain.tiers import Tier
from core.entrypoints.http.commands import (
    CommandAccepted,
    admin_command,
    refused,
    undecided,
)
from core.entrypoints.http.deps import LIST_READS, BusDep, IdempotencyKey, RegistryDep
from core.handlers import tiers as handlers
from core.seeds import DEFAULT_TIERS
from core.views.tiers import TierView, get_tier, get_tier_revision, list_tiers
from kernel.application import Decided, Outcome, Rejected
from kernel.auth import Principal, access, principal_of, public
from kernel.deps import ConnDep, PoolDep
from kernel.http import PROBLEM_SCHEMA, Problem, decode_cursor, encode_cursor
from kernel.ratelimit import rate_limited
from schemas.tier import (
    TIER_ID_RE,
    CreateTier,
    ReactivateTier,
    RetireTier,
    ReviseTier,
    TierId,
    TierStatus,
    TierTerms,
)

router = APIRouter(prefix="/tiers", tags=["tiers"])

TierIdPath = Annotated[str, Path(min_length=2, max_length=40, pattern=f"^{TIER_ID_RE.pattern}$",
                                 examples=["standard-50k"])]

# Refusal reasons -> HTTP status; the problem type is the reason itself.
REASON_STATUS = {
    "tier-exists": 409,
    "tier-not-found": 404,
    "terms-unchanged": 409,
    "tier-retired": 409,
    "tier-active": 409,
}

EXAMPLE_TERMS: dict[str, Any] = DEFAULT_TIERS["standard-50k"].model_dump(mode="json")
EXAMPLE_TIER = {"tier_id": "standard-50k", "terms": EXAMPLE_TERMS}
EXAMPLE_VIEW = {"tier_id": "standard-50k", "status": "active", "revision": 1,
                "terms": EXAMPLE_TERMS, "created_at": "2026-11-23T09:00:00.000000Z",
                "updated_at": "2026-11-23T09:00:00.000000Z", "version": 1}
EXAMPLE_REVISION = {"terms": {**EXAMPLE_TERMS, "price_minor": 27_900,
                              "description": "Challenge and verification, then a funded "
                                             "account; 20 USD off from this revision on."}}


class TierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier_id: TierId
    terms: TierTerms


class TierTermsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: TierTerms


class RetireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200, examples=["replaced by standard-50k-v2"])


class TierPage(BaseModel):
    items: list[TierView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class TierRevisionPublic(BaseModel):
    """The terms of one revision, as every purchase made at it keeps them."""

    tier_id: str
    revision: int
    terms: TierTerms


ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM_SCHEMA for s in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
# A realistic answer for the OpenAPI document, per status that returns a tier.
TIER_ANSWER = {"content": {"application/json": {"example": EXAMPLE_VIEW}}}
ADMIN = access("admin", scope="admin")
CATALOGUE = public("the tiers on sale; an admin's credential with scope admin also shows "
                   "retired ones")
AdminDep = Annotated[Principal, ADMIN]
# Every command route is an admin's, and takes a token of the app's default bucket, per caller
# and per IP.
COMMAND_LIMIT = [Depends(rate_limited("tier-commands"))]


def _is_admin(request: Request) -> bool:
    """Public routes ignore credentials, except that an admin's show retired tiers too."""
    principal = principal_of(request.scope)
    return (principal is not None and principal.role == "admin"
            and "admin" in principal.scopes)


@router.get("", operation_id="listTiers", summary="List tiers by id",
            description="Public. Anonymous callers and traders see active tiers only; admins "
                        "see every tier, or those of `status`.",
            response_model=TierPage,
            responses={200: {"content": {"application/json": {"example": {
                "items": [EXAMPLE_VIEW], "next_cursor": None}}}},
                       400: PROBLEM_SCHEMA, 403: PROBLEM_SCHEMA, 422: PROBLEM_SCHEMA,
                       429: PROBLEM_SCHEMA},
            dependencies=[CATALOGUE, LIST_READS])
async def list_all(
    request: Request,
    conn: ConnDep,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: TierStatus | None = None,
) -> TierPage:
    if not _is_admin(request):
        if status == "retired":
            raise Problem(403, "forbidden", "Not allowed", "only admins list retired tiers")
        status = "active"
    after = decode_cursor(cursor, keys=("after",))["after"] if cursor else None
    if after is not None and not isinstance(after, str):
        raise Problem(400, "invalid-cursor", "The cursor is not valid")
    items = await list_tiers(conn, after=after, limit=limit + 1, status=status)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor({"after": items[-1].tier_id}) if more and items else None
    return TierPage(items=items, next_cursor=next_cursor)


def _not_found(tier_id: str) -> Problem:
    return Problem(404, "tier-not-found", "Tier not found", f"there is no tier {tier_id!r}")


@router.get("/{tier_id}", operation_id="getTier", summary="One tier, at its current revision",
            description="Public. A retired tier is not found, except for admins.",
            response_model=TierView,
            responses={200: TIER_ANSWER, 404: PROBLEM_SCHEMA, 422: PROBLEM_SCHEMA},
            dependencies=[CATALOGUE])
async def get_one(tier_id: TierIdPath, request: Request, conn: ConnDep) -> TierView:
    found = await get_tier(conn, tier_id)
    if found is None or (found.status != "active" and not _is_admin(request)):
        raise _not_found(tier_id)
    return found


@router.get("/{tier_id}/revisions/{revision}", operation_id="getTierRevision",
            summary="The terms of one revision of a tier (admin)",
            response_model=TierRevisionPublic,
            responses={200: {"content": {"application/json": {"example": {
                "tier_id": "standard-50k", "revision": 1, "terms": EXAMPLE_TERMS}}}},
                       **{s: PROBLEM_SCHEMA for s in (401, 403, 404, 422)}})
async def get_revision(tier_id: TierIdPath,
                       revision: Annotated[int, Path(ge=1, le=1_000_000, examples=[1])],
                       _: AdminDep, conn: ConnDep) -> TierRevisionPublic:
    terms = await get_tier_revision(conn, tier_id, revision)
    if terms is None:
        raise Problem(404, "tier-revision-not-found", "Tier revision not found",
                      f"tier {tier_id!r} has no revision {revision}")
    return TierRevisionPublic(tier_id=tier_id, revision=revision, terms=terms)


def _check_rules(terms: TierTerms) -> None:
    """Rules whose parameters are each in range but contradict one another: a 422 naming each
    field, as pydantic names a field out of range, and nothing is sent."""
    found = terms_contradictions(terms)
    if found:
        errors = [{"location": ".".join(str(p) for p in ("body", "terms", *c.path)),
                   "message": c.message} for c in found]
        raise Problem(422, "validation-failed", "The request is not valid",
                      f"{len(errors)} problem(s) with the request", errors=errors)


def _answer(outcome: Outcome[Tier], tier_id: str) -> Any:
    """The decided tier as the catalogue shows it, else the 202 or the problem."""
    if isinstance(outcome, Decided):
        return handlers.public(outcome.known)
    if isinstance(outcome, Rejected):
        raise refused(outcome, REASON_STATUS)
    return undecided(outcome, location=f"/tiers/{tier_id}")


async def _change(tier_id: str, payload: handlers.Change, *, bus: BusDep,
                  registry: RegistryDep, pool: PoolDep, admin: Principal,
                  idempotency_key: str | None, route: str) -> Any:
    async def read() -> TierView | None:
        async with pool.connection() as conn:  # per read: none held through the wait
            return await get_tier(conn, tier_id)

    outcome = await handlers.change(bus, registry, admin_command(
        payload, tier_id, admin=admin, idempotency_key=idempotency_key, route=route),
        read=read)
    return _answer(outcome, tier_id)


@router.post("", operation_id="createTier", status_code=201, summary="Create a tier (admin)",
             response_model=TierView,
             responses={201: TIER_ANSWER, 202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def create(body: Annotated[TierCreate, Body(examples=[EXAMPLE_TIER])], admin: AdminDep,
                 bus: BusDep, registry: RegistryDep, response: Response,
                 idempotency_key: IdempotencyKey = None) -> Any:
    _check_rules(body.terms)
    outcome = await handlers.create(bus, registry, admin_command(
        CreateTier(terms=body.terms), body.tier_id, admin=admin,
        idempotency_key=idempotency_key, route="create"))
    if isinstance(outcome, Decided):
        response.headers["Location"] = f"/tiers/{body.tier_id}"
    return _answer(outcome, body.tier_id)


@router.put("/{tier_id}/terms", operation_id="reviseTier",
            summary="New terms for future purchases: the next revision (admin)",
            description="Assessments already bought keep the revision they were sold at. The "
                        "same terms again are refused with `terms-unchanged`.",
            response_model=TierView,
            responses={200: TIER_ANSWER, 202: {"model": CommandAccepted}, **ERRORS},
            dependencies=COMMAND_LIMIT)
async def revise(tier_id: TierIdPath,
                 body: Annotated[TierTermsUpdate, Body(examples=[EXAMPLE_REVISION])],
                 admin: AdminDep, bus: BusDep, registry: RegistryDep, pool: PoolDep,
                 idempotency_key: IdempotencyKey = None) -> Any:
    _check_rules(body.terms)
    return await _change(tier_id, ReviseTier(terms=body.terms), bus=bus, registry=registry,
                         pool=pool, admin=admin, idempotency_key=idempotency_key,
                         route="revise")


@router.post("/{tier_id}/retire", operation_id="retireTier",
             summary="Stop selling a tier (admin)", response_model=TierView,
             responses={200: TIER_ANSWER, 202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def retire(tier_id: TierIdPath,
                 body: Annotated[RetireRequest,
                                 Body(examples=[{"reason": "replaced by standard-50k-v2"}])],
                 admin: AdminDep, bus: BusDep, registry: RegistryDep, pool: PoolDep,
                 idempotency_key: IdempotencyKey = None) -> Any:
    return await _change(tier_id, RetireTier(reason=body.reason), bus=bus, registry=registry,
                         pool=pool, admin=admin, idempotency_key=idempotency_key,
                         route="retire")


@router.post("/{tier_id}/reactivate", operation_id="reactivateTier",
             summary="Sell a retired tier again (admin)", response_model=TierView,
             responses={200: TIER_ANSWER, 202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def reactivate(tier_id: TierIdPath, admin: AdminDep, bus: BusDep,
                     registry: RegistryDep, pool: PoolDep,
                     idempotency_key: IdempotencyKey = None) -> Any:
    return await _change(tier_id, ReactivateTier(), bus=bus, registry=registry, pool=pool,
                         admin=admin, idempotency_key=idempotency_key, route="reactivate")
