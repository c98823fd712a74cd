"""Entry point of the ``vaultmesh`` command: one sub-command group per module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vaultmesh import __version__
from vaultmesh.cli import agent, logs, nodes, provision, swarm, up, vault

# Each module adds its sub-commands; a sub-command sets ``func`` returning an exit code.
GROUPS = (up, provision, agent, vault, logs, nodes, swarm)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="vaultmesh", description="VaultMesh Swarm control plane")
    parser.add_argument("--version", action="version", version=f"vaultmesh {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
