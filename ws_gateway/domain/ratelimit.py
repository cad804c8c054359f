"""Limits: a token bucket per connection for control messages (beyond it: close 4429), and
the open connections per client address and per user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address


@dataclass(slots=True)
class Bucket:
    rate: float
    burst: int
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Limits:
    """Open connections per key (a client address, a user), each at most `limit`.

    `enter` counts a connection in when there is room and says whether there was; `leave`
    counts it out. A limit of 0 lets any number in.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def enter(self, key: str) -> bool:
        count = self.open.get(key, 0)
        if self.limit and count >= self.limit:
            return False
        self.open[key] = count + 1
        return True

    def leave(self, key: str) -> None:
        count = self.open.get(key, 0) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)


def client_address(peer: str, forwarded_for: str | None,
                   trusted: Sequence[IPv4Network | IPv6Network]) -> str:
    """The address a connection is counted under: the peer's, or, when the peer is a trusted
    proxy (an ingress), the right-most `X-Forwarded-For` entry that is not one itself.
    Entries left of it are the client's own claims and are never believed."""
    try:
        address = ip_address(peer)
    except ValueError:
        return peer
    if not forwarded_for or not any(address in net for net in trusted):
        return str(address)
    for entry in reversed([e.strip() for e in forwarded_for.split(",")][-20:]):
        try:
            hop = ip_address(entry)
        except ValueError:
            return str(address)  # a garbled header: count the proxy, not a made-up name
        if not any(hop in net for net in trusted):
            return str(hop)
    return str(address)
