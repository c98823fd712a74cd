"""``python -m vaultmesh.services.gateway``: serve HTTP until SIGTERM, then drain NATS."""

from __future__ import annotations

import sys

from vaultmesh.services.gateway.app import SERVICE
from vaultmesh.services.gateway.config import GatewaySettings
from vaultmesh.services.gateway.service import build_for
from vaultmesh.shared.runtime import run_service

if __name__ == "__main__":
    sys.exit(run_service(GatewaySettings, SERVICE, build_for))
