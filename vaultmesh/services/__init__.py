"""One package per service; each runs with ``python -m vaultmesh.services.<name>``."""
