"""``python -m vaultmesh.services.logger``: run the logger until SIGTERM.

A logger that another one replaced (it claimed the log) stands down and ends its
process as on SIGTERM, logging why.
"""

from __future__ import annotations

import sys

from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.service import build_for, ending_when_fenced
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.runtime import Builder, run_service


def _build(settings: LoggerSettings, clock: Clock | None = None) -> Builder:
    return ending_when_fenced(build_for(settings, clock))


if __name__ == "__main__":
    sys.exit(run_service(LoggerSettings, "logger", _build))
