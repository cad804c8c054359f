"""Control messages of the WebSocket protocol: parsed from text frames, never trusted.

A client sends JSON objects with a `type`: `subscribe`, `unsubscribe`, `resume`, `ping`,
`auth`. Anything else is answered with an `error` frame naming the problem; the parser
never raises on client input (a hypothesis test feeds it garbage).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from schemas.ws import CHANNELS

# Close codes (RFC 6455 private range 4000-4999), documented in decision 0014.
CLOSE_BAD_FRAME = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_RATE_LIMITED = 4429

MARKET_PREFIX = "market"

# Public channel families and the market topic each is fed by.
PUBLIC_FAMILIES = {f.name: f.topic for f in CHANNELS.values() if f.access == "public"}
PRIVATE_FAMILIES = frozenset(f.name for f in CHANNELS.values() if f.access != "public")
SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._:-]{0,39}$")
PRIVATE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
FAMILY = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
REQUEST_ID_MAX = 64
MAX_SEQ = 2**64 - 1
MAX_EPOCH = 2**32 - 1

ErrorCode = Literal["bad-json", "bad-message", "unknown-type", "bad-channel", "forbidden",
                    "unauthenticated", "too-many-subscriptions", "not-subscribed",
                    "token-expired", "unavailable"]


@dataclass(frozen=True, slots=True)
class Channel:
    """`market|bars|news:<SYMBOL>` (public) or `<family>:<id>` (private: `account:<account
    id>`, `assessment:<assessment id>`, `simulation:<account id>`)."""

    family: str
    key: str

    @property
    def name(self) -> str:
        return f"{self.family}:{self.key}"

    @property
    def public(self) -> bool:
        return self.family in PUBLIC_FAMILIES


def parse_channel(text: object, *,
                  private_families: frozenset[str] = PRIVATE_FAMILIES) -> Channel | None:
    """The channel named by `text`, or None for anything not a known, well-formed name."""
    if not isinstance(text, str) or len(text) > 80:
        return None
    family, sep, key = text.partition(":")
    if not sep:
        return None
    if family in PUBLIC_FAMILIES:
        return Channel(family, key) if SYMBOL.match(key) else None
    if family in private_families and PRIVATE_ID.match(key):
        return Channel(family, str(uuid.UUID(key)))
    return None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client stopped in a channel: its epoch and the last sequence it received."""

    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: Channel
    since: Position | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: Channel
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class ProtocolError:
    code: ErrorCode
    message: str
    request_id: str | None = None


Control = Subscribe | Unsubscribe | Ping | Auth


def _position(value: Any) -> Position | ProtocolError | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return ProtocolError("bad-message", "`since` must be {\"epoch\": int, \"seq\": int}")
    epoch, seq = value.get("epoch"), value.get("seq")
    if (type(epoch) is not int or type(seq) is not int or not 0 <= epoch <= MAX_EPOCH
            or not 0 <= seq <= MAX_SEQ):
        return ProtocolError("bad-message", "`since` needs integer `epoch` (u32) and `seq` "
                                            "(u64)")
    return Position(epoch, seq)


def parse_control(data: str | bytes, *, private_families: frozenset[str] = PRIVATE_FAMILIES
                  ) -> Control | ProtocolError:
    """A client's text frame as a control message, or the error to answer it with."""
    try:
        msg = orjson.loads(data)
    except (orjson.JSONDecodeError, UnicodeDecodeError, TypeError):
        return ProtocolError("bad-json", "a control message is one JSON object")
    if not isinstance(msg, dict):
        return ProtocolError("bad-message", "a control message is one JSON object")
    rid = msg.get("id")
    request_id = rid if isinstance(rid, str) and len(rid) <= REQUEST_ID_MAX else None
    kind = msg.get("type")
    if kind == "ping":
        return Ping(request_id)
    if kind == "auth":
        token = msg.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= 4096:
            return ProtocolError("bad-message", "`auth` needs a `token`", request_id)
        return Auth(token, request_id)
    if kind in ("subscribe", "unsubscribe", "resume"):
        channel = parse_channel(msg.get("channel"), private_families=private_families)
        if channel is None:
            return ProtocolError("bad-channel", "`channel` must be `market|bars|news:<SYMBOL>`, "
                                 "`account|simulation:<account id>` or "
                                 "`assessment:<assessment id>`", request_id)
        if kind == "unsubscribe":
            return Unsubscribe(channel, request_id)
        since = _position(msg.get("since") if kind == "subscribe" else
                          {"epoch": msg.get("epoch"), "seq": msg.get("seq")})
        if isinstance(since, ProtocolError):
            return ProtocolError(since.code, since.message, request_id)
        return Subscribe(channel, since, request_id)
    return ProtocolError("unknown-type", "`type` must be one of subscribe, unsubscribe, "
                         "resume, ping, auth", request_id)


def error_frame(error: ProtocolError) -> bytes:
    body: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
    if error.request_id is not None:
        body["id"] = error.request_id
    return orjson.dumps(body)


def reply(kind: str, request_id: str | None, **fields: Any) -> bytes:
    body: dict[str, Any] = {"type": kind, **fields}
    if request_id is not None:
        body["id"] = request_id
    return orjson.dumps(body)
