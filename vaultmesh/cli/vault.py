"""`vaultmesh vault`: placeholder until its issue lands (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the `vault` sub-command."""
    parser = sub.add_parser("vault", help="(not yet available)")
    parser.set_defaults(func=_missing)


def _missing(_args: argparse.Namespace) -> int:
    print("vaultmesh vault: not yet available")
    return 2
