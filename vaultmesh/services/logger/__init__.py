"""The logger: a durable, tamper-evident audit log of the bus (see docs/logger.md)."""
