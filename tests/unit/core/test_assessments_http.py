"""Who may read assessments and accounts: role first, then the credential's scope."""

from __future__ import annotations

from typing import get_args

import pytest

from core.entrypoints.http.assessments import Reader
from kernel.auth import ROLE_SCOPES, Principal
from kernel.problems import Problem
from schemas.identity import Role

pytestmark = pytest.mark.asyncio

# The declared rule's gate: what FastAPI runs before the handler.
reader = get_args(Reader)[1].dependency
USER = "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02"


def principal(role: Role, scopes: frozenset[str] | None = None) -> Principal:
    return Principal(user_id=USER, role=role, via="token" if scopes is None else "api-key",
                     scopes=ROLE_SCOPES[role] if scopes is None else scopes)


@pytest.mark.parametrize("role", ["trader", "admin"])
async def test_traders_and_admins_with_their_role_scopes_may_read(role: Role) -> None:
    assert await reader(principal(role)) == principal(role)


async def test_an_analyst_is_forbidden() -> None:
    with pytest.raises(Problem) as refused:
        await reader(principal("analyst"))
    assert (refused.value.status, refused.value.slug) == (403, "forbidden")


async def test_a_trader_api_key_without_account_read_is_refused() -> None:
    with pytest.raises(Problem) as refused:
        await reader(principal("trader", frozenset({"account:trade"})))
    assert (refused.value.status, refused.value.slug) == (403, "scope-missing")
