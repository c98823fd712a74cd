"""``python -m vaultmesh.services.agent [options]``: same as ``vaultmesh agent run``."""

from __future__ import annotations

import sys

from vaultmesh.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["agent", "run", *sys.argv[1:]]))
