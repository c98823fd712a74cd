"""The node agent: health checks and heartbeats from each machine of the fleet (seed 000/004).

The same shape as the services, without bus handlers (the agent answers nothing):

- ``__main__`` and ``vaultmesh agent run``: ``process.main``/``process.run``, which go
  through the shared runtime's ``run_process`` (settings, logging, uvloop, exit codes);
- ``service``: its one builder, ``build_for``, which returns the ``Agent`` (``daemon``);
- ``errors``: this package's errors, under ``vaultmesh.shared.errors.VaultMeshError``;
- the domain (``health``, ``state``, ``config``), which never imports ``nats``; only the
  transport ``nats_sender`` does.
"""
