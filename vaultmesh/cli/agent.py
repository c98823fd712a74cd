"""`vaultmesh agent`: placeholder until its issue lands (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the `agent` sub-command."""
    parser = sub.add_parser("agent", help="(not yet available)")
    parser.set_defaults(func=_missing)


def _missing(_args: argparse.Namespace) -> int:
    print("vaultmesh agent: not yet available")
    return 2
