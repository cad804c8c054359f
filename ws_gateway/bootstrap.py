"""Wire one gateway process: Redis, PostgreSQL, the log, the hub and the WebSocket server."""

from __future__ import annotations

import asyncio
import logging
import signal

from websockets.asyncio.server import serve

from kernel.api_key_store import PostgresApiKeyStore
from kernel.auth import Authenticator
from kernel.http import make_cache
from kernel.observability import get_logger
from kernel.pg import make_pool
from schemas.ws import CHANNELS
from ws_gateway.adapters.accounts import Owners
from ws_gateway.adapters.kafka_source import LogSource
from ws_gateway.adapters.redis_store import GatewayStore
from ws_gateway.config import GatewaySettings
from ws_gateway.entrypoints.server import Gateway
from ws_gateway.hub import Hub, Source, run_all

log = get_logger(__name__)


def sources(settings: GatewaySettings) -> dict[str, Source]:
    """Physical topic -> the channel family it feeds (`schemas.ws.CHANNELS`)."""
    return {settings.topic(family.topic): Source(family.name, public=family.access == "public",
                                                 ticks=family.topic == "market.ticks")
            for family in CHANNELS.values()}


async def serve_gateway(settings: GatewaySettings) -> None:
    """Run the gateway until SIGTERM/SIGINT."""
    # One line per connection opened and closed is noise at thousands of clients.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)
    redis = make_cache(settings, max_connections=50)
    pool = make_pool(settings, min_size=1, max_size=5)
    store = GatewayStore(redis, settings.namespace, history_size=settings.ws_history_size,
                         history_ttl_s=settings.ws_history_ttl_s,
                         watch_ttl_s=settings.ws_watch_ttl_s)
    hub = Hub(store, write_high=settings.ws_write_high_bytes,
              slow_close_s=settings.ws_slow_close_s)
    topics = sources(settings)
    gateway = Gateway(settings, hub=hub, store=store, owners=Owners(pool),
                      authenticator=Authenticator(settings, redis=redis,
                                                  api_keys=PostgresApiKeyStore(pool)))
    source = LogSource(settings, topics, round_s=settings.ws_round_ms / 1000)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    from propstream.gate import wait_at_gate

    await asyncio.to_thread(wait_at_gate)  # under `propstream up`: until the topics exist
    await pool.open()
    await source.start()
    try:
        async with serve(gateway.handle, settings.host, settings.ws_port,
                         process_request=gateway.process_request,
                         max_size=settings.ws_max_message_bytes, compression=None,
                         ping_interval=20, ping_timeout=20, max_queue=16,
                         # A client closed for flooding has its pings queued before its
                         # close reply; do not wait the default 10 s for it.
                         close_timeout=2):
            gateway.ready = True
            log.info("process started", name="ws-gateway", port=settings.ws_port,
                     topics=sorted(topics))
            await run_all(source.run(hub.on_records),
                          hub.run_flusher(settings.ws_flush_ms / 1000), stopping.wait())
    finally:
        gateway.ready = False
        await source.stop()
        await pool.close()
        await redis.aclose()
        log.info("process stopped", name="ws-gateway")
