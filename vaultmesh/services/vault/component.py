"""The running vault: storage, keyring, audit trail and micro endpoint, started and
stopped in order, with the ACL reloaded on SIGHUP."""

from __future__ import annotations

import asyncio
import signal

from vaultmesh.services.vault import masterkey
from vaultmesh.services.vault.acl import PolicyHolder
from vaultmesh.services.vault.audit import AuditTrail
from vaultmesh.services.vault.errors import KeyringError
from vaultmesh.services.vault.vault import Vault
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import MicroService


class VaultComponent:
    """The running vault: storage, keyring, audit trail and micro endpoint, in start/stop order."""

    def __init__(
        self,
        vault: Vault,
        audit: AuditTrail,
        endpoint: MicroService,
        policy: PolicyHolder,
        metrics: ServiceMetrics,
        *,
        handle_sighup: bool = False,
    ) -> None:
        self.vault = vault
        self.audit = audit
        self.policy = policy
        self._endpoint = endpoint
        self._handle_sighup = handle_sighup
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
        if self._handle_sighup:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload_acl)
        self._started = True

    async def stop(self) -> None:
        """Stop taking requests, finish those in flight, flush audit, close storage."""
        if not self._started:
            return
        self._started = False
        if self._handle_sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self._endpoint.stop()
        await self.vault.close()
        await self.audit.stop()
        await self.vault.store.close()

    def reload_acl(self) -> bool:
        """Re-read the ACL file (SIGHUP); the old policy stays on error."""
        ok = self.policy.reload()
        self._reloads.labels(self._service, "ok" if ok else "error").inc()
        return ok
