"""fleet-state: node registry, heartbeat history, attention model and the events working set.

The shape every service package shares:

- ``__main__``: ``run_service(FleetSettings, NAME, build_for)`` (the shared runtime);
- ``api``: the bus handlers of ``fleet.api.*`` (thin: validated request in, registry, reply);
- ``service``: the running component (``FleetService``) and its one builder, ``build_for``;
- ``errors``: this package's errors, under ``vaultmesh.shared.errors.VaultMeshError``;
- the domain (``registry``, ``attention``, ``ingest``, ``events``, ``tombstones``,
  ``replication``, ``takeover`` ...), which never imports ``nats``; only the bus adapters
  ``tail``, ``writer``, ``history``, ``lease``, ``statewatch`` and ``service`` do.
"""
