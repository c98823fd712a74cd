"""``python -m vaultmesh.services.logger``: run the logger until SIGTERM.

A logger that another one replaced (it claimed the log) stands down and ends its
process as on SIGTERM, logging why.
"""

from __future__ import annotations

import os
import signal
import sys

from nats.aio.client import Client

from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.service import LoggerService, build_for
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.runtime import Builder, run_service


def _ending_when_fenced(settings: LoggerSettings, clock: Clock | None = None) -> Builder:
    build = build_for(settings, clock)

    async def wrapped(nc: Client, metrics: ServiceMetrics) -> LoggerService:
        service = await build(nc, metrics)
        assert isinstance(service, LoggerService)
        service.on_fenced = lambda: os.kill(os.getpid(), signal.SIGTERM)
        return service

    return wrapped


if __name__ == "__main__":
    sys.exit(run_service(LoggerSettings, "logger", _ending_when_fenced))
