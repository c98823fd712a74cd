"""The running vault and its builder: storage, keyring, audit trail and the ``vault`` micro
service, wired by ``build_for`` and started and stopped in order (the handler is in ``api``).

SIGHUP re-reads the ACL: the runtime calls ``reload`` once the vault has started.
"""

from __future__ import annotations

from nats.aio.client import Client
from nats.js import JetStreamContext

from vaultmesh.services.vault import masterkey, replies
from vaultmesh.services.vault.acl import PolicyHolder
from vaultmesh.services.vault.api import INLINE_READS, VaultHandlers
from vaultmesh.services.vault.audit import AuditTrail
from vaultmesh.services.vault.config import VaultSettings
from vaultmesh.services.vault.errors import KeyringError
from vaultmesh.services.vault.keyring import Keyring
from vaultmesh.services.vault.kv_store import KvStore
from vaultmesh.services.vault.sqlite_store import SqliteStore
from vaultmesh.services.vault.store import Store
from vaultmesh.services.vault.vault import Limits, Vault
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock, SystemClock
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import MicroService, RawEndpoint
from vaultmesh.shared.runtime import Builder, Lifecycle

DESCRIPTION = "VaultMesh vault: encrypted secrets (vault.<principal>.<op>)"


class VaultComponent(Lifecycle):
    """The running vault: storage, keyring, audit trail and micro endpoint, in start/stop order."""

    def __init__(
        self,
        vault: Vault,
        audit: AuditTrail,
        endpoint: MicroService,
        policy: PolicyHolder,
        metrics: ServiceMetrics,
    ) -> None:
        self.vault = vault
        self.audit = audit
        self.policy = policy
        self._endpoint = endpoint
        self._started = False
        self._reloads = metrics.counter(
            "vaultmesh_vault_acl_reloads_total", "ACL reloads by result.", ["result"]
        )
        self._service = metrics.service
        term = metrics.gauge("vaultmesh_vault_key_term", "The key term new writes use.")
        term.labels(metrics.service).set_function(lambda: vault.keyring.active)

    async def start(self) -> None:
        """Open storage and keyring, start the audit trail, then take requests (idempotent)."""
        if self._started:
            return
        await self.vault.store.open()
        try:
            await self.vault.open()
        except KeyringError as exc:
            await self.vault.store.close()
            sources = [masterkey.FILE_VAR, masterkey.ENV_VAR]
            if self.vault.keyring.has_previous:
                sources += [masterkey.PREVIOUS_FILE_VAR, masterkey.PREVIOUS_ENV_VAR]
            raise ConfigError(f"{' / '.join(sources)}: {exc}") from None
        self.audit.use_hmac_key(self.vault.keyring.audit_key)
        await self.audit.start()
        await self._endpoint.start()
        self._started = True

    async def stop(self) -> None:
        """Stop taking requests, finish those in flight, flush audit, close storage."""
        if not self._started:
            return
        self._started = False
        await self._endpoint.stop()
        await self.vault.close()
        await self.audit.stop()
        await self.vault.store.close()

    def reload(self) -> bool:
        """Re-read the ACL file (SIGHUP); the old policy stays on error."""
        ok = self.policy.reload()
        self._reloads.labels(self._service, "ok" if ok else "error").inc()
        return ok


def _store(settings: VaultSettings, js: JetStreamContext) -> Store:
    if settings.vault_backend == "kv":
        return KvStore(js, settings.vault_replicas)
    return SqliteStore(settings.db_file)


def build_for(settings: VaultSettings, clock: Clock | None = None) -> Builder:
    """The vault's builder for ``settings`` (the real clock by default)."""

    async def build(nc: Client, metrics: ServiceMetrics) -> VaultComponent:
        return _build(nc, metrics, settings, clock or SystemClock())

    return build


def _build(
    nc: Client, metrics: ServiceMetrics, settings: VaultSettings, clock: Clock
) -> VaultComponent:
    master = masterkey.load(settings)
    previous = masterkey.load_previous(settings, master)
    keyring = Keyring(master, previous)
    del master, previous  # only the keyring's cipher objects keep them from here on
    js = nc.jetstream()
    store = _store(settings, js)
    vault = Vault(
        store, keyring, clock, Limits(settings.vault_max_versions, settings.vault_rotate_after)
    )
    fail_closed = settings.vault_audit_fail_closed
    audit = AuditTrail(
        nc,
        metrics,
        fail_closed=fail_closed,
        timeout=settings.vault_audit_timeout,
        queue_size=settings.vault_audit_queue,
        replicas=settings.vault_replicas,
    )
    policy = PolicyHolder(settings.vault_acl_file)
    handlers = VaultHandlers(
        vault,
        policy,
        audit,
        metrics,
        clock,
        max_request_bytes=settings.max_request_bytes,
        max_value_bytes=settings.vault_max_value_bytes,
    )
    inline = (
        INLINE_READS if store.backend == SqliteStore.backend and not fail_closed else frozenset()
    )
    endpoint = MicroService(
        nc,
        name=subjects.SERVICE_VAULT,
        description=DESCRIPTION,
        endpoints=[
            RawEndpoint(
                "vault",
                subjects.VAULT_ALL,
                handlers.handle,
                inline=lambda subject: subject.rpartition(".")[2] in inline,
                accepts=replies.checker(
                    private=replies.private_inboxes(settings.nats_inbox_prefix)
                ),
            )
        ],
        metrics=metrics,
        queue_group=subjects.QUEUE_VAULT,
        max_request_bytes=settings.max_request_bytes,
        max_in_flight=settings.vault_max_in_flight,
    )
    return VaultComponent(vault, audit, endpoint, policy, metrics)
