"""`vaultmesh nodes`: the fleet registry over NATS (``fleet.api.*``), as the operator.

    vaultmesh nodes list [--status OK|ATTN|CRIT] [--limit N]
    vaultmesh nodes delete NODE_ID

``delete`` removes a node from fleet-state (audited there as ``audit.fleet.node_delete``);
a node that heartbeats afterwards registers again as a new node. Options: ``--json``
(print the reply's data as JSON), ``--timeout``. The connection is the one of every
operator command (see connection.py). Exit codes: 0 ok, 1 error, 2 usage,
4 no such node, 69 fleet-state or NATS unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from uuid import UUID

from vaultmesh.cli.connection import operator_settings
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import VaultMeshError
from vaultmesh.shared.models.fleet import NodeStatus

EXIT_CODES = {"not_found": 4, "unavailable": 69}
CLI_PRINCIPAL = "vaultmesh-cli"


def register(sub: Any) -> None:
    """Add the `nodes` command group."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", help="print the reply data as JSON")
    common.add_argument("--timeout", type=float, help="seconds to wait for a reply (default 5)")
    parser = sub.add_parser("nodes", help="the fleet registry over NATS", parents=[common])
    ops = parser.add_subparsers(dest="nodes_command", metavar="OPERATION", required=True)
    listing = ops.add_parser("list", help="list nodes by hostname", parents=[common])
    listing.add_argument("--status", choices=[s.value for s in NodeStatus])
    listing.add_argument("--limit", type=int, default=1000, help="most nodes (default 1000)")
    listing.set_defaults(func=_run)
    delete = ops.add_parser("delete", help="remove a node from the registry", parents=[common])
    delete.add_argument("node_id", type=_node_id, help="the node's UUID")
    delete.set_defaults(func=_run)


def _node_id(text: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a node id (a UUID): {text!r}") from None


def _request(args: argparse.Namespace, settings_user: str | None) -> tuple[str, dict[str, Any]]:
    if args.nodes_command == "list":
        query: dict[str, Any] = {"limit": args.limit}
        if getattr(args, "status", None):
            query["status"] = args.status
        return "list", query
    # Who asked, for fleet-state's audit record: the NATS identity the CLI connects as.
    return "delete", {"node_id": args.node_id, "by": settings_user or CLI_PRINCIPAL}


async def _call(args: argparse.Namespace) -> Any:
    settings = operator_settings()
    op, payload = _request(args, settings.nats_user)
    nc = await bus.connect(settings, "vaultmesh-cli")
    try:
        timeout = getattr(args, "timeout", 5.0)
        return await bus.request(nc, subjects.fleet_api(op), payload, timeout=timeout)
    finally:
        await bus.close(nc)


def _run(args: argparse.Namespace) -> int:
    try:
        data = asyncio.run(_call(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except VaultMeshError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_CODES.get(exc.code, 1)
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    elif args.nodes_command == "list":
        _print_nodes(data)
    else:
        print(f"deleted {data['node_id']} ({data['hostname']}, was {data['status']})")
    return 0


def _print_nodes(data: dict[str, Any]) -> None:
    for node in data["nodes"]:
        print(f"{node['node_id']}  {node['status']:<4}  {node['hostname']}  {node['last_seen']}")
    print(f"{len(data['nodes'])} of {data['total']} nodes", file=sys.stderr)
