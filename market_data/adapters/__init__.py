"""market_data adapters."""
