"""``python -m vaultmesh.services.logger``: run the logger until SIGTERM."""

from __future__ import annotations

import sys

from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.service import build_for
from vaultmesh.shared.runtime import run_service

if __name__ == "__main__":
    sys.exit(run_service(LoggerSettings, "logger", build_for))
