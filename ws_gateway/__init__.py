"""ws_gateway."""
