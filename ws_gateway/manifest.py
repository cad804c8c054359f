"""The WebSocket gateway, declared once: `propstream run ws-gateway`, started by
`propstream up`, deployed by the chart (`wsGateway`), listed in the docs."""

from __future__ import annotations

from kernel.manifest import Api, Lazy, ServiceManifest
from ws_gateway.config import GatewaySettings

MANIFEST = ServiceManifest(
    name="ws_gateway",
    settings=GatewaySettings,
    api=Api(process="ws-gateway", argv=("ws-gateway",),
            factory=Lazy("ws_gateway.bootstrap", "serve_gateway"), port_setting="ws_port",
            description="the WebSocket gateway: market and private account channels from "
                        "the log, JSON or CRC-checked binary frames, resume (`/ws`)"),
)
