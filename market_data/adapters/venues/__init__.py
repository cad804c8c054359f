"""Live venue connectors: one reconnecting WebSocket client driving a pure `VenueFeed`."""
