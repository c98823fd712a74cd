"""`vaultmesh up`: placeholder until its issue lands (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the `up` sub-command."""
    parser = sub.add_parser("up", help="(not yet available)")
    parser.set_defaults(func=_missing)


def _missing(_args: argparse.Namespace) -> int:
    print("vaultmesh up: not yet available")
    return 2
