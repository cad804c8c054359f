"""The WebSocket gateway's wire contract (`/ws`): control and data messages, the binary tick
frame, and their AsyncAPI 3.0 document (`schemas/export/ws-gateway.asyncapi.json`).

The gateway builds its messages with orjson for speed; a unit test checks that what it
sends validates against these models, so the document and the code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Access = Literal["public", "account-owner", "assessment-owner"]


@dataclass(frozen=True, slots=True)
class ChannelFamily:
    """A kind of channel: the catalogue topic that feeds it and who may read it.

    `public`: anyone connected (anonymous clients too when configured); `account-owner`: the
    user owning the account named by the channel's key (`accounts.user_id`), and admins;
    `assessment-owner`: the user owning the assessment (`assessments.user_id`), and admins.
    Private channels are keyed by the record key of their topic (the aggregate id), so a
    channel lives on one partition and its sequence, the log position, only grows.
    """

    name: str
    topic: str
    access: Access
    description: str


# Every channel family, declared once with its access rule: the gateway reads these topics,
# parses these names and authorizes by this rule; a family without one cannot be declared.
CHANNELS: dict[str, ChannelFamily] = {f.name: f for f in (
    ChannelFamily("market", "market.ticks", "public",
                  "an instrument's ticks (price, size, bid, ask); binary frames on request"),
    ChannelFamily("bars", "market.bars", "public", "an instrument's closed OHLCV bars"),
    ChannelFamily("news", "market.events", "public",
                  "an instrument's news and volatility regime changes"),
    ChannelFamily("account", "account.events", "account-owner",
                  "every event of an account: orders, fills, positions, balance, equity, rule "
                  "status, warnings, violations, halts"),
    ChannelFamily("assessment", "assessment.events", "assessment-owner",
                  "an assessment's lifecycle: created, phase started, completed (passed or "
                  "failed), abandoned, cancelled"),
    ChannelFamily("simulation", "simulation.events", "account-owner",
                  "Monte Carlo runs of an account: started, progress, completed, failed"),
)}

_READERS = {"public": "anyone connected", "account-owner": "the account's owner and admins",
            "assessment-owner": "the assessment's owner and admins"}

U32 = Field(ge=0, le=2**32 - 1)
U64 = Field(ge=0, le=2**64 - 1)
CHANNEL = Field(max_length=80, pattern=r"^[a-z][a-z0-9-]{0,30}:[A-Za-z0-9._:-]{1,40}$",
                description="`market|bars|news:<SYMBOL>` (public), `account|simulation:<account "
                            "id>` or `assessment:<assessment id>` (the owner and admins)")
REQUEST_ID = Field(default=None, max_length=64,
                   description="echoed in the reply when a short string")


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Since(_Message):
    epoch: int = U32
    seq: int = U64


class SubscribeRequest(_Message):
    """Subscribe to a channel; with `since`, resume it from that position."""

    type: Literal["subscribe"]
    channel: str = CHANNEL
    since: Since | None = None
    id: str | None = REQUEST_ID


class ResumeRequest(_Message):
    """Subscribe from (epoch, seq): the same as `subscribe` with `since`."""

    type: Literal["resume"]
    channel: str = CHANNEL
    epoch: int = U32
    seq: int = U64
    id: str | None = REQUEST_ID


class UnsubscribeRequest(_Message):
    type: Literal["unsubscribe"]
    channel: str = CHANNEL
    id: str | None = REQUEST_ID


class PingRequest(_Message):
    type: Literal["ping"]
    id: str | None = REQUEST_ID


class AuthRequest(_Message):
    """A fresh access token for the same user, before the current one expires."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)
    id: str | None = REQUEST_ID


class Welcome(_Message):
    """First message of a connection: its session (name it in `?session=` on reconnect to
    get its market watch back) and data format."""

    type: Literal["welcome"]
    session: str = Field(max_length=64)
    format: Literal["json", "binary"]
    user: str | None
    expires_at: str | None = Field(description="when the access token expires (RFC 3339)")


class Subscribed(_Message):
    type: Literal["subscribed"]
    channel: str = CHANNEL
    epoch: int = Field(ge=0, le=2**32 - 1, description="0 while the channel has no history")
    instrument_id: int | None = Field(default=None, ge=0, le=0xFFFF,
                                      description="the id binary frames use (market channels)")
    resumed: bool | None = Field(default=None, description="with `since`: true when exactly "
                                 "the gap follows, false when a snapshot does")
    reason: Literal["epoch-changed", "history-exceeded", "no-history"] | None = None
    auto: bool | None = Field(default=None, description="re-subscribed from the market watch")
    id: str | None = REQUEST_ID


class Snapshot(_Message):
    """The channel's state now (the latest tick, bar or event; an account's balances), sent
    on a fresh subscribe or when a resume cannot be served from the history."""

    type: Literal["snapshot"]
    channel: str = CHANNEL
    epoch: int = U32
    seq: int = U64
    data: Any


class TickData(_Message):
    epoch: int = U32
    type: Literal["tick"]
    channel: str = CHANNEL
    seq: int = U64
    id: int = Field(ge=0, le=0xFFFF, description="instrument id")
    ts: int = Field(description="venue time, ns since the epoch")
    price: float
    size: float
    bid: float | None
    ask: float | None


class Ticks(_Message):
    """A delivery round's ticks for a JSON client (a binary client gets one binary frame)."""

    type: Literal["ticks"]
    data: list[TickData]


class Event(_Message):
    """An event of a channel: bars and news on public channels; orders, fills, positions,
    equity and rule verdicts on an account's; an assessment's outcome; a simulation's
    progress; `data` is the event's payload as on the log."""

    epoch: int = U32
    type: Literal["event"]
    channel: str = CHANNEL
    seq: int = U64
    event: str = Field(max_length=120, description="the event type, e.g. trading.order-filled")
    at: str = Field(description="when it happened (RFC 3339)")
    data: dict[str, Any]


class Pong(_Message):
    type: Literal["pong"]
    id: str | None = REQUEST_ID


class Unsubscribed(_Message):
    type: Literal["unsubscribed"]
    channel: str = CHANNEL
    id: str | None = REQUEST_ID


class Authenticated(_Message):
    type: Literal["authenticated"]
    expires_at: str | None
    id: str | None = REQUEST_ID


class Refresh(_Message):
    """The token expires soon: send `auth` with a new one, or the connection closes 4401."""

    type: Literal["refresh"]
    expires_at: str | None


class Error(_Message):
    type: Literal["error"]
    code: Literal["bad-json", "bad-message", "unknown-type", "bad-channel", "forbidden",
                  "unauthenticated", "too-many-subscriptions", "not-subscribed",
                  "token-expired", "unavailable"]
    message: str
    id: str | None = REQUEST_ID


CLIENT_MESSAGES: tuple[type[_Message], ...] = (
    SubscribeRequest, ResumeRequest, UnsubscribeRequest, PingRequest, AuthRequest)
SERVER_MESSAGES: tuple[type[_Message], ...] = (
    Welcome, Subscribed, Snapshot, Ticks, Event, Pong, Unsubscribed, Authenticated, Refresh,
    Error)

CLOSE_CODES = {
    1009: "a client frame beyond the maximum message size (PROPSTREAM_WS_MAX_MESSAGE_BYTES)",
    4400: "a bad frame: binary from the client, or a format other than json or binary",
    4401: "credentials missing (anonymous reads not enabled), refused, or the token expired",
    4408: "too slow: the socket stayed full for PROPSTREAM_WS_SLOW_CLOSE_S, or the event "
          "queue overflowed",
    4429: "more control messages than the rate limit allows, or more open connections for "
          "the user than PROPSTREAM_WS_MAX_CONNECTIONS_PER_USER (too many from one address "
          "are refused before the upgrade: HTTP 429)",
}

BINARY_FRAME = (
    "Little-endian. Offset 0: u32 CRC32 (IEEE, zlib.crc32) of every byte after it; offset 4: "
    "u16 entry count N; then N entries of 38 bytes: u16 instrument id (from `subscribed`), "
    "u32 channel epoch, u64 channel sequence, i64 venue time (ns), f64 price, f64 volume.")

EXAMPLES: dict[str, dict[str, Any]] = {
    "SubscribeRequest": {"type": "subscribe", "channel": "market:BTC-USD", "id": "s1",
                         "since": {"epoch": 3141592653, "seq": 2097152}},
    "ResumeRequest": {"type": "resume", "channel": "market:BTC-USD", "epoch": 3141592653,
                      "seq": 2097152},
    "UnsubscribeRequest": {"type": "unsubscribe", "channel": "market:BTC-USD"},
    "PingRequest": {"type": "ping", "id": "p1"},
    "AuthRequest": {"type": "auth", "token": "<a fresh access token>"},
    "Welcome": {"type": "welcome", "session": "4f2a9c1e0b7d4e8f9a6b5c4d3e2f1a0b",
                "format": "binary", "user": "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2",
                "expires_at": "2026-12-06T04:15:00+00:00"},
    "Subscribed": {"type": "subscribed", "channel": "market:BTC-USD", "epoch": 3141592653,
                   "instrument_id": 1, "resumed": True, "id": "s1"},
    "Snapshot": {"type": "snapshot", "channel": "market:BTC-USD", "epoch": 3141592653,
                 "seq": 2098176, "data": {"type": "tick", "channel": "market:BTC-USD",
                                          "seq": 2098176, "id": 1,
                                          "ts": 1795000000000000000, "price": 97012.5,
                                          "size": 0.25, "bid": 97012.0, "ask": 97013.0}},
    "Ticks": {"type": "ticks", "data": [{"epoch": 3141592653, "type": "tick",
                                         "channel": "market:BTC-USD", "seq": 2098177, "id": 1,
                                         "ts": 1795000000001000000, "price": 97013.0,
                                         "size": 0.1, "bid": 97012.5, "ask": 97013.5}]},
    "Event": {"epoch": 271828182, "type": "event",
              "channel": "account:6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2", "seq": 5120,
              "event": "trading.order-filled", "at": "2026-12-06T04:00:00.123Z",
              "data": {"order_id": "…", "quantity": "0.5", "price": "97013.0"}},
    "Pong": {"type": "pong", "id": "p1"},
    "Unsubscribed": {"type": "unsubscribed", "channel": "market:BTC-USD"},
    "Authenticated": {"type": "authenticated", "expires_at": "2026-12-06T04:30:00+00:00"},
    "Refresh": {"type": "refresh", "expires_at": "2026-12-06T04:15:00+00:00"},
    "Error": {"type": "error", "code": "forbidden",
              "message": "account:6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2 is not yours",
              "id": "s2"},
}


def asyncapi_document(version: str) -> dict[str, Any]:
    """The gateway's AsyncAPI 3.0 document: one WebSocket channel, its messages both ways."""
    from pydantic.json_schema import models_json_schema

    models = (*CLIENT_MESSAGES, *SERVER_MESSAGES)
    _, definitions = models_json_schema([(m, "validation") for m in models],
                                        ref_template="#/components/schemas/{model}")
    messages: dict[str, Any] = {}
    for model in models:
        name = model.__name__
        messages[name] = {
            "name": name, "title": name, "contentType": "application/json",
            "summary": (model.__doc__ or name).strip().splitlines()[0],
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "examples": [{"name": name, "payload": EXAMPLES[name]}]}
    messages["TickFrame"] = {
        "name": "TickFrame", "title": "Binary tick frame",
        "contentType": "application/octet-stream",
        "summary": "A delivery round's ticks for a client connected with `?format=binary`.",
        "description": BINARY_FRAME,
        "payload": {"type": "string", "format": "binary"}}
    ref = {"$ref": "#/channels/gateway"}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "propstream WebSocket gateway", "version": version,
                 "description": "Kafka to browsers by channel. Close codes: " + "; ".join(
                     f"{code} {why}" for code, why in CLOSE_CODES.items()) + "."},
        "servers": {"local": {"host": "127.0.0.1:8002", "protocol": "ws", "pathname": "/ws",
                              "description": "`propstream run ws-gateway`"}},
        "defaultContentType": "application/json",
        "channels": {"gateway": {
            "address": "/ws",
            "title": "one connection",
            "description": "Query: `token` (or `Authorization: Bearer` / `X-API-Key`), "
                           "`format=json|binary`, `session` (resume a market watch). Channels "
                           "(subscribe by name; `<family>:<key>`): " + "; ".join(
                               f"`{f.name}:` {f.description} (from `{f.topic}`; read by: "
                               f"{_READERS[f.access]})" for f in CHANNELS.values()) + ".",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            "bindings": {"ws": {"bindingVersion": "0.1.0", "query": {
                "type": "object", "properties": {
                    "token": {"type": "string"}, "format": {"enum": ["json", "binary"]},
                    "session": {"type": "string", "maxLength": 64}}}}}}},
        "operations": {
            "receiveControl": {"action": "receive", "channel": ref,
                               "summary": "Control messages from the client",
                               "messages": [{"$ref": f"#/channels/gateway/messages/{m.__name__}"}
                                            for m in CLIENT_MESSAGES]},
            "sendData": {"action": "send", "channel": ref,
                         "summary": "Replies and data to the client",
                         "messages": [{"$ref": f"#/channels/gateway/messages/{name}"}
                                      for name in (*(m.__name__ for m in SERVER_MESSAGES),
                                                   "TickFrame")]}},
        "components": {"schemas": definitions.get("$defs", {}), "messages": messages},
    }
