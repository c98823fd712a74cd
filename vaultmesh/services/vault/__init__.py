"""The vault: encrypted secrets over NATS, with ACL, audit and online key rotation (seed 003).

The shape every service package shares:

- ``__main__``: ``run_service(VaultSettings, "vault", build_for)`` (the shared runtime);
- ``api``: the bus handler of ``vault.<principal>.<op>`` (decode, ACL, operation, audit, reply);
- ``service``: the running component (``VaultComponent``) and its one builder, ``build_for``;
- ``errors``: this package's errors, under ``vaultmesh.shared.errors.VaultMeshError``;
- the domain (``vault``, ``keyring``, ``acl``, ``store`` and ``sqlite_store`` ...), which never
  imports ``nats``; only the bus adapters ``audit``, ``kv_store`` (with ``kv_index``, the
  key index that follows the bucket, and ``kv_lease``, the rewrap lease) and ``service`` do.
"""
