"""Redis, PostgreSQL and Kafka of the gateway."""
