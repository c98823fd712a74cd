"""The logger: a durable, tamper-evident audit log of the bus (see docs/logger.md).

The shape every service package shares:

- ``__main__``: ``run_service(LoggerSettings, "logger", build_for)`` (the shared runtime);
- ``api``: the bus handlers of ``logs.*`` (view, stats, proof, checkpoint);
- ``service``: the running component (``LoggerService``) and its one builder, ``build_for``;
- ``errors``: this package's errors, under ``vaultmesh.shared.errors.VaultMeshError``;
- the domain (``auditlog``, ``merkle``, ``segments``, ``query``, ``checkpoint``,
  ``chunks``, ``catchup`` ...), which never imports ``nats``; only the bus adapters
  ``capture``, ``feed``, ``alerts``, ``authwatch``, ``replica`` and ``service`` do.
"""
