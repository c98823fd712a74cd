"""The heartbeat loop (seed 000/004): check, send, sleep, for ever.

Failures are logged and retried on the next interval with no backoff (seed 000
V1). Shutdown is by cancelling ``run``: the sleep and any in-flight check or
delivery are interrupted at once; ``stop`` then releases the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from vaultmesh.services.agent import health
from vaultmesh.services.agent.errors import SendError
from vaultmesh.services.agent.health import NodeIdentity, Probes
from vaultmesh.services.agent.transport import Sender
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.runtime import Lifecycle

log = logging.getLogger(__name__)
# Shutdown must be quick (seed 000: stop within a second of SIGTERM).
_CLOSE_TIMEOUT = 0.5


class Agent(Lifecycle):
    """One node's agent: builds heartbeats from health checks and sends them."""

    def __init__(
        self,
        identity: NodeIdentity,
        probes: Probes,
        sender: Sender,
        clock: Clock,
        check_timeout: float = 2.0,
    ) -> None:
        self.identity = identity
        self._probes = probes
        self._sender = sender
        self._clock = clock
        self._check_timeout = check_timeout
        self._healthy_link: bool | None = None

    @property
    def target(self) -> str:
        """Where heartbeats go (for logs)."""
        return self._sender.target

    async def start(self) -> None:
        """Announce the agent; the transport connects on the first send (and retries each
        interval), so an unreachable target never stops the agent from starting."""
        log.info(
            "agent starting",
            extra={
                "node_id": str(self.identity.node_id),
                "target": self.target,
                "interval_s": self.identity.interval_s,
            },
        )

    async def stop(self) -> None:
        """Release the transport's connections, waiting half a second at most."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sender.close(), _CLOSE_TIMEOUT)

    async def beat(self) -> bool:
        """Check health and send one heartbeat; True when it was accepted."""
        try:
            report = await health.check(self._probes, self.identity.root, self._check_timeout)
            heartbeat = health.build_heartbeat(self.identity, report, self._clock.now())
            await self._sender.send(heartbeat)
        except SendError as exc:
            self._note_failure(str(exc), exc.status)
            return False
        except Exception:
            # A bug in one round must not stop the heartbeats (seed 000: keep running).
            log.exception("heartbeat round failed")
            self._healthy_link = False
            return False
        self._note_success(report)
        return True

    async def run(self) -> None:
        """Beat every interval until cancelled."""
        interval = self.identity.interval_s
        while True:
            started = time.monotonic()
            await self.beat()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _note_failure(self, reason: str, status: int | None) -> None:
        self._healthy_link = False
        log.warning(
            "heartbeat not delivered; retrying next interval",
            extra={"reason": reason, "status_code": status, "target": self._sender.target},
        )

    def _note_success(self, report: health.HealthReport) -> None:
        # Info on the first success and after a failure; debug otherwise, to keep logs short.
        level = logging.DEBUG if self._healthy_link else logging.INFO
        self._healthy_link = True
        log.log(
            level,
            "heartbeat delivered",
            extra={
                "node_id": str(self.identity.node_id),
                "target": self._sender.target,
                "cloudflare_ok": report.cloudflare_ok,
                "services_ok": report.services_ok,
            },
        )
