"""Wire models, defined once and used by every producer and consumer."""
