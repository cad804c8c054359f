"""Who is calling: the identity idempotency keys and rate limits are scoped by.

Until authentication lands (issue 5), the caller is the `X-Caller` header when sent, else
the client IP. `X-Caller` is a trusted placeholder: any client can set it, so it only
partitions keys and buckets; issue 5 replaces it with the authenticated user id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.types import Scope

CALLER_HEADER = b"x-caller"
CALLER_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller's identity (`X-Caller` or the IP) and the IP it connects from."""

    identity: str
    ip: str

    @property
    def anonymous(self) -> bool:
        """No identity beyond the IP: one bucket, not two."""
        return self.identity == f"ip:{self.ip}"


def caller_of(scope: Scope) -> Caller:
    """The caller of an ASGI request; a malformed `X-Caller` counts as none."""
    client = scope.get("client")
    ip = client[0] if client else "unknown"
    for name, value in scope.get("headers", ()):
        if name.lower() == CALLER_HEADER:
            sent = value.decode("latin-1")
            if CALLER_RE.match(sent):
                return Caller(identity=f"caller:{sent}", ip=ip)
            break
    return Caller(identity=f"ip:{ip}", ip=ip)
