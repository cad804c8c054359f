"""The gateway's Prometheus metrics (served as every process's, `PROPSTREAM_METRICS_PORT`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("propstream_ws_connections", "Open WebSocket connections")
DELIVERIES = Counter("propstream_ws_deliveries_total",
                     "Messages reaching a client's socket (a tick in a bundled frame counts once "
                     "per client)", ["kind"])
FRAMES = Counter("propstream_ws_frames_total", "WebSocket data frames written")
QUEUED = Gauge("propstream_ws_queued_messages",
               "Messages held back for slow clients (conflated ticks and queued events)")
SLOW_CLIENTS = Gauge("propstream_ws_slow_clients", "Clients whose socket buffer is full")
DROPS = Counter("propstream_ws_drops_total", "Ticks replaced by a newer one for a slow client")
CLOSES = Counter("propstream_ws_closes_total", "Connections closed by the gateway", ["code"])
TICK_TO_SEND = Histogram(
    "propstream_ws_tick_to_send_seconds",
    "A tick's receive time at the venue adapter until its frame is written to the socket",
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
             0.05, 0.1, 0.25, 0.5, 1, 2.5))
REFUSED = Counter("propstream_ws_refused_total",
                  "Connections refused at the connection limits, by which limit ("
                  "`address`: HTTP 429 before the upgrade; `user`: closed 4429)", ["limit"])
