"""`vaultmesh agent`: the node agent daemon (seed 000/004); the process is the agent package's."""

from __future__ import annotations

import argparse
from typing import Any

from vaultmesh.services.agent import process


def register(sub: Any) -> None:
    """Add the `agent` sub-commands."""
    parser = sub.add_parser("agent", help="the node agent (heartbeats)")
    commands = parser.add_subparsers(dest="agent_command", metavar="SUBCOMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="send heartbeats until stopped",
        epilog=process.ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    process.add_run_options(run)
    run.set_defaults(func=process.run)
    node_id = commands.add_parser("node-id", help="print this node's id (creating it if needed)")
    process.add_env_file_option(node_id)
    node_id.set_defaults(func=lambda args: process.print_node_id(args.env_file))
