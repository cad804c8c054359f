"""The WebSocket gateway: Kafka to browsers by channel (issue 13, decision 0014)."""
