"""Generate the Docker secrets of ``stack.yml``: ``vaultmesh swarm secrets``, kept for old notes.

    python scripts/stack_secrets.py OUT_DIR [--docker]

Writes the missing secret files into OUT_DIR (``vaultmesh.ops.secretfiles``); with
``--docker`` also creates the missing Docker secrets, as ``vaultmesh swarm secrets OUT_DIR``
does (without it, as ``--files-only``). Secret values are never printed.
"""

from __future__ import annotations

import sys

from vaultmesh.cli.main import main as vaultmesh


def main(argv: list[str]) -> int:
    """Translate the old options into ``vaultmesh swarm secrets``."""
    docker = "--docker" in argv
    rest = [arg for arg in argv if arg != "--docker"]
    return vaultmesh(["swarm", "secrets", *rest, *([] if docker else ["--files-only"])])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
