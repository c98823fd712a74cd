"""``python -m vaultmesh.services.agent [options]``: same as ``vaultmesh agent run``."""

from __future__ import annotations

import sys

from vaultmesh.services.agent.process import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
