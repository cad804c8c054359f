"""WebSocket gateway configuration: the kernel's settings plus the gateway's limits."""

from __future__ import annotations

from pydantic import Field, IPvAnyNetwork

from kernel.settings import KernelSettings


class GatewaySettings(KernelSettings):
    """Everything a gateway process is configured with (`PROPSTREAM_WS_*`)."""

    ws_port: int = Field(default=8002, ge=1, le=65535,
                         description="port of the WebSocket gateway (`/ws`, `/livez`, `/readyz`)")
    ws_allow_anonymous: bool = Field(
        default=False, description="let clients without credentials read public market channels")
    ws_history_size: int = Field(default=1000, ge=1, le=1_000_000,
                                 description="messages kept per channel for resume (Redis)")
    ws_history_ttl_s: int = Field(default=3600, ge=10, le=30 * 86400,
                                  description="an idle channel's history and epoch expire after")
    ws_watch_ttl_s: int = Field(default=30 * 86400, ge=60, le=365 * 86400,
                                description="how long a session's market watch is kept")
    ws_max_message_bytes: int = Field(default=4096, ge=256, le=1024 * 1024,
                                      description="largest client frame; larger closes 1009")
    ws_max_subscriptions: int = Field(default=200, ge=1, le=10_000,
                                      description="channels per connection")
    ws_queue_messages: int = Field(default=1000, ge=10, le=1_000_000,
                                   description="JSON messages queued for a slow client before 4408")
    ws_write_high_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024,
                                     description="a client's socket buffer above this is slow")
    ws_socket_send_buffer: int = Field(
        default=0, ge=0, le=64 * 1024 * 1024,
        description="SO_SNDBUF of each client socket in bytes (0: the kernel's autotuning); "
                    "bounds what a client that stopped reading holds in the kernel")
    ws_slow_close_s: float = Field(default=10.0, gt=0, le=600,
                                   description="a client slow this long is closed 4408")
    ws_round_ms: int = Field(
        default=0, ge=0, le=1000,
        description="least time between two delivery rounds (0: as the log delivers); more "
                    "bundles more ticks per frame, fewer frames per client, more latency")
    ws_flush_ms: int = Field(default=20, ge=1, le=1000,
                             description="how often conflated ticks of slow clients are retried")
    ws_control_rate_per_s: float = Field(default=20.0, gt=0, le=100_000,
                                         description="control messages per second per client")
    ws_control_burst: int = Field(default=100, ge=1, le=1_000_000,
                                  description="burst of control messages; beyond it 4429")
    ws_refresh_before_s: int = Field(default=30, ge=0, le=3600,
                                     description="ask for a new token this long before expiry")
    ws_max_connections_per_ip: int = Field(
        default=500, ge=0, le=1_000_000,
        description="open connections per client address; beyond it the handshake gets HTTP "
                    "429 (0: no limit)")
    ws_max_connections_per_user: int = Field(
        default=50, ge=0, le=1_000_000,
        description="open connections per authenticated user (and per API key's owner); "
                    "beyond it the connection is closed 4429 (0: no limit)")
    ws_trusted_proxies: tuple[IPvAnyNetwork, ...] = Field(
        default=(),
        description="networks of the proxies in front (an ingress) whose X-Forwarded-For "
                    "names the client address the per-address limit counts")
