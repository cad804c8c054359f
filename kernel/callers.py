"""Who is calling: the identity idempotency keys and rate limits are scoped by.

The caller is the authenticated user (see kernel.auth: the AuthMiddleware has proven the
credential before any layer asks) or, for an anonymous request, the client IP. A credential
that fails to verify counts as anonymous here: it never names someone else's bucket or keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

from kernel.auth import principal_of


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller's identity (`user:<id>` or `ip:<ip>`) and the IP it connects from."""

    identity: str
    ip: str

    @property
    def anonymous(self) -> bool:
        """No identity beyond the IP: one bucket, not two."""
        return self.identity == f"ip:{self.ip}"


def caller_of(scope: Scope) -> Caller:
    """The caller of an ASGI request."""
    client = scope.get("client")
    ip = client[0] if client else "unknown"
    principal = principal_of(scope)
    if principal is not None:
        return Caller(identity=principal.identity, ip=ip)
    return Caller(identity=f"ip:{ip}", ip=ip)
