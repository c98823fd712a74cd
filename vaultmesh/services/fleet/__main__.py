"""``python -m vaultmesh.services.fleet``: run fleet-state until SIGTERM."""

from __future__ import annotations

import sys

from vaultmesh.shared.runtime import run_service

from .config import FleetSettings
from .service import NAME, build_for

if __name__ == "__main__":
    sys.exit(run_service(FleetSettings, NAME, build_for))
