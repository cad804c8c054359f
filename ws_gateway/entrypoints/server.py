"""The WebSocket endpoint: `/ws` upgrades, `/livez` and `/readyz` answer plain HTTP.

A connection authenticates once, on connect (`Authorization: Bearer …`, `X-API-Key`, or
`?token=` since browsers cannot set headers), chooses its data format (`?format=binary`
or `json`) and may name the session whose market watch it resumes (`?session=`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from kernel.auth import Authenticator, Principal
from kernel.observability import get_logger
from schemas.ws import CHANNELS
from ws_gateway import metrics
from ws_gateway.adapters.accounts import Owners
from ws_gateway.adapters.redis_store import GatewayStore
from ws_gateway.config import GatewaySettings
from ws_gateway.domain.conflation import Pending
from ws_gateway.domain.frames import encode_frames
from ws_gateway.domain.messages import tick_from_message, with_epoch
from ws_gateway.domain.protocol import (
    CLOSE_BAD_FRAME,
    CLOSE_RATE_LIMITED,
    CLOSE_UNAUTHENTICATED,
    Auth,
    Channel,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    error_frame,
    parse_channel,
    parse_control,
    reply,
)
from ws_gateway.domain.ratelimit import Bucket, Limits, client_address
from ws_gateway.domain.resume import Gap, Snapshot, plan_resume
from ws_gateway.hub import Client, Hub

log = get_logger(__name__)
SESSION_MAX = 64


class WsSocket:
    """The hub's view of a websockets connection: writes that never wait."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.closing: asyncio.Task[None] | None = None

    def write(self, frames: Sequence[bytes]) -> None:
        """Whole frames, framed once for every client of a round: straight to the transport
        (the protocol object keeps no state of what it sends once a frame is whole)."""
        conn = self.conn
        if conn.protocol.state is not State.OPEN or conn.transport is None:
            return
        if conn.send_in_progress is not None:  # a fragmented send of ours: never, but safe
            return
        if len(frames) == 1:
            conn.transport.write(frames[0])
        else:
            conn.transport.writelines(frames)

    def buffered(self) -> int:
        transport = self.conn.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def close_soon(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(self.conn.close(code, reason))


class Connection:
    """One client's session: authentication, control messages, subscriptions."""

    def __init__(self, gateway: Gateway, conn: ServerConnection, client: Client, *,
                 principal: Principal | None, expires_at: datetime | None,
                 session: str) -> None:
        self.gateway = gateway
        self.conn = conn
        self.client = client
        self.principal = principal
        self.expires_at = expires_at
        self.session = session
        self.owned: dict[tuple[str, str], bool] = {}
        settings = gateway.settings
        self.bucket = Bucket(settings.ws_control_rate_per_s, settings.ws_control_burst)

    @property
    def owner_key(self) -> str:
        return self.principal.user_id if self.principal is not None else "anonymous"

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.conn.send(message, text=True)

    async def run(self) -> None:
        hub = self.gateway.hub
        loop = asyncio.get_running_loop()
        expiry = loop.create_task(self.watch_expiry())
        try:
            await self.send(reply("welcome", None, session=self.session,
                                  format="binary" if self.client.binary else "json",
                                  user=self.principal.user_id if self.principal else None,
                                  expires_at=_iso(self.expires_at)))
            for name in await self.gateway.store.watch_list(self.owner_key, self.session):
                channel = self.gateway.channel(name)
                if channel is not None and channel.public:
                    await self.subscribe(Subscribe(channel, None, None), auto=True)
            async for message in self.conn:
                if self.client.closed:
                    break
                if not self.bucket.take(loop.time()):
                    hub.close(self.client, CLOSE_RATE_LIMITED, "rate limit")
                    break
                if isinstance(message, bytes):
                    hub.close(self.client, CLOSE_BAD_FRAME, "binary frames are not accepted")
                    break
                await self.handle(message)
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            hub.remove(self.client)
            closing = getattr(self.client.socket, "closing", None)
            if closing is not None:  # the close code must go out before the handler returns
                with contextlib.suppress(Exception):
                    await closing

    async def handle(self, message: str) -> None:
        control = parse_control(message)
        match control:
            case ProtocolError():
                await self.send(error_frame(control))
            case Ping(request_id):
                await self.send(reply("pong", request_id))
            case Subscribe():
                await self.subscribe(control)
            case Unsubscribe(channel, request_id):
                if channel.name not in self.client.channels:
                    await self.send(error_frame(ProtocolError(
                        "not-subscribed", f"not subscribed to {channel.name}", request_id)))
                    return
                self.gateway.hub.leave(self.client, channel.name)
                if channel.public:
                    await self.gateway.store.watch(self.owner_key, self.session, channel.name,
                                                   on=False)
                await self.send(reply("unsubscribed", request_id, channel=channel.name))
            case Auth(token, request_id):
                await self.reauthenticate(token, request_id)

    async def may_read(self, channel: Channel) -> ProtocolError | None:
        """The channel family's declared access rule (`schemas.ws.CHANNELS`)."""
        access = CHANNELS[channel.family].access
        if access == "public":
            return None
        if self.principal is None:
            return ProtocolError("unauthenticated", "private channels need credentials")
        if self.principal.role == "admin" and "admin" in self.principal.scopes:
            return None
        if "account:read" not in self.principal.scopes:  # an API key without the scope
            return ProtocolError("forbidden", "this credential lacks the account:read scope")
        cached = (access, channel.key)
        owned = self.owned.get(cached)
        if owned is None:
            owner = await self.gateway.owners.owner(access, channel.key)
            owned = self.owned[cached] = owner == self.principal.user_id
        return None if owned else ProtocolError("forbidden", f"{channel.name} is not yours")

    async def subscribe(self, request: Subscribe, *, auto: bool = False) -> None:
        channel, rid = request.channel, request.request_id
        name, client, hub, store = channel.name, self.client, self.gateway.hub, self.gateway.store
        refusal = await self.may_read(channel)
        if refusal is not None:
            await self.send(error_frame(ProtocolError(refusal.code, refusal.message, rid)))
            return
        if name in client.channels:
            hub.leave(client, name)  # a second subscribe restarts it (a resume, say)
        elif len(client.channels) >= self.gateway.settings.ws_max_subscriptions:
            await self.send(error_frame(ProtocolError(
                "too-many-subscriptions",
                f"at most {self.gateway.settings.ws_max_subscriptions} channels", rid)))
            return
        hub.join(client, name)
        await hub.settled()  # every round sent before the join is in the history now
        ident = (await hub.instrument_id(channel.key)) if channel.family == "market" else None
        outcome: Gap | Snapshot | None = None
        if request.since is not None:
            outcome = plan_resume(request.since,
                                  await store.history(name, after=request.since.seq))
        epoch, last_seq, last = await store.latest(name)
        fields: dict[str, Any] = {"channel": name, "epoch": epoch}
        if ident is not None:
            fields["instrument_id"] = ident
        if auto:
            fields["auto"] = True
        if isinstance(outcome, Gap):
            fields["resumed"] = True
        elif isinstance(outcome, Snapshot):
            fields["resumed"] = False
            fields["reason"] = outcome.reason
        await self.send(reply("subscribed", rid, **fields))
        if isinstance(outcome, Gap):
            await self.replay(outcome, epoch)
            after = outcome.messages[-1][0] if outcome.messages else request.since.seq  # type: ignore[union-attr]
        else:
            owners = self.gateway.owners
            data = (await owners.snapshot(channel.family, channel.key)
                    if owners.has_snapshot(channel.family)
                    else last if last is not None else b"null")
            await self.send(b'{"type":"snapshot","channel":' + orjson.dumps(name)
                            + b',"epoch":' + str(epoch).encode() + b',"seq":'
                            + str(last_seq).encode() + b',"data":' + data + b"}")
            after = last_seq
        if channel.public and not auto:
            await store.watch(self.owner_key, self.session, name, on=True)
        hub.resumed(client, name, after=after)

    async def replay(self, gap: Gap, epoch: int) -> None:
        if self.client.binary:
            ticks = [t for t in (tick_from_message(m, epoch=epoch) for _, m in gap.messages)
                     if t is not None]
            if ticks:
                for frame in encode_frames(ticks):
                    with contextlib.suppress(ConnectionClosed):
                        await self.conn.send(frame)
                others = [m for _, m in gap.messages if tick_from_message(m, epoch=0) is None]
            else:
                others = [m for _, m in gap.messages]
        else:
            others = [m for _, m in gap.messages]
        for message in others:
            await self.send(with_epoch(message, epoch))

    async def reauthenticate(self, token: str, request_id: str | None) -> None:
        principal, expires_at = await self.gateway.authenticate(token)
        if principal is None or (self.principal is not None
                                 and principal.user_id != self.principal.user_id):
            await self.send(error_frame(ProtocolError("unauthenticated", "token refused",
                                                      request_id)))
            self.gateway.hub.close(self.client, CLOSE_UNAUTHENTICATED, "token refused")
            return
        self.principal, self.expires_at = principal, expires_at
        self.owned.clear()
        await self.send(reply("authenticated", request_id, expires_at=_iso(expires_at)))

    async def watch_expiry(self) -> None:
        """Ask for a new token shortly before expiry; close 4401 when none came."""
        asked_for: datetime | None = None
        while True:
            if self.expires_at is None:
                await asyncio.sleep(3600)
                continue
            left = (self.expires_at - datetime.now(UTC)).total_seconds()
            if left <= 0:
                await self.send(error_frame(ProtocolError("token-expired",
                                                          "the access token expired")))
                self.gateway.hub.close(self.client, CLOSE_UNAUTHENTICATED, "token expired")
                return
            before = self.gateway.settings.ws_refresh_before_s
            if left <= before and asked_for != self.expires_at:
                asked_for = self.expires_at
                await self.send(reply("refresh", None, expires_at=_iso(self.expires_at)))
            await asyncio.sleep(min(left, max(left - before, 0.05)) if left > before else left)


class Gateway:
    """The server side: authenticates connections and hands them to the hub."""

    def __init__(self, settings: GatewaySettings, *, hub: Hub, store: GatewayStore,
                 owners: Owners, authenticator: Authenticator) -> None:
        self.settings = settings
        self.hub = hub
        self.store = store
        self.owners = owners
        self.authenticator = authenticator
        self.per_address = Limits(settings.ws_max_connections_per_ip)
        self.per_user = Limits(settings.ws_max_connections_per_user)
        self.ready = False

    def channel(self, name: str) -> Channel | None:
        return parse_channel(name)

    async def authenticate(self, credential: str, ip: str = "unknown"
                           ) -> tuple[Principal | None, datetime | None]:
        verdict = await self.authenticator.authenticate(credential, ip=ip)
        if not isinstance(verdict, Principal):
            return None, None
        if verdict.via == "api-key":
            return verdict, None
        claims = self.authenticator.tokens.verify(credential, now=datetime.now(UTC))
        return verdict, getattr(claims, "exp", None)

    def address(self, conn: ServerConnection, request: Request) -> str:
        """The client's address (`domain.ratelimit.client_address`)."""
        peer = str(conn.remote_address[0]) if conn.remote_address else "unknown"
        return client_address(peer, request.headers.get("X-Forwarded-For"),
                              self.settings.ws_trusted_proxies)

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/livez":
            return conn.respond(200, "ok\n")
        if path == "/readyz":
            return conn.respond(200, "ready\n") if self.ready else conn.respond(503, "starting\n")
        if path != "/ws":
            return conn.respond(404, "not found; WebSocket clients connect to /ws\n")
        address = self.address(conn, request)
        if not self.per_address.enter(address):
            metrics.REFUSED.labels("address").inc()
            log.warning("connection refused", reason="too many connections from the address",
                        address=address, limit=self.per_address.limit)
            return conn.respond(429, "too many connections from this address\n")
        # counted out when the connection is lost, whether or not the handshake completed
        conn.connection_lost_waiter.add_done_callback(
            lambda _: self.per_address.leave(address))
        return None

    async def handle(self, conn: ServerConnection) -> None:
        request = conn.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        credential = _credential(request, query)
        ip = self.address(conn, request)
        principal: Principal | None = None
        expires_at: datetime | None = None
        if credential:
            principal, expires_at = await self.authenticate(credential, ip)
            if principal is None:
                await conn.close(CLOSE_UNAUTHENTICATED, "credentials refused")
                return
        elif not self.settings.ws_allow_anonymous:
            await conn.close(CLOSE_UNAUTHENTICATED, "credentials required")
            return
        user = principal.user_id if principal is not None else None
        if user is not None and not self.per_user.enter(user):
            metrics.REFUSED.labels("user").inc()
            log.warning("connection refused", reason="too many connections for the user",
                        user_id=user, limit=self.per_user.limit)
            await conn.close(CLOSE_RATE_LIMITED, "too many connections")
            return
        try:
            await self._serve(conn, query, principal, expires_at)
        finally:
            if user is not None:
                self.per_user.leave(user)

    async def _serve(self, conn: ServerConnection, query: dict[str, list[str]],
                     principal: Principal | None, expires_at: datetime | None) -> None:
        fmt = (query.get("format") or ["json"])[0]
        if fmt not in ("json", "binary"):
            await conn.close(CLOSE_BAD_FRAME, "format is json or binary")
            return
        session = (query.get("session") or [""])[0]
        if not session or len(session) > SESSION_MAX or not session.replace("-", "").isalnum():
            session = uuid.uuid4().hex
        if self.settings.ws_socket_send_buffer and conn.transport is not None:
            raw = conn.transport.get_extra_info("socket")
            if raw is not None:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                               self.settings.ws_socket_send_buffer)
        client = Client(socket=WsSocket(conn), binary=fmt == "binary",
                        pending=Pending(limit=self.settings.ws_queue_messages))
        self.hub.add(client)
        await Connection(self, conn, client, principal=principal, expires_at=expires_at,
                         session=session).run()


def _credential(request: Request, query: dict[str, list[str]]) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        kind, _, rest = header.partition(" ")
        return rest.strip() if kind.lower() == "bearer" else ""
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    token = query.get("token") or query.get("api_key")
    return token[0] if token else None


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
