"""fleet-state: node registry, heartbeat history, attention model and the events working set."""
