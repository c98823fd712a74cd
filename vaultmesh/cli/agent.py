"""`vaultmesh agent`: the node agent daemon (seed 000/004)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import uvloop

from vaultmesh.services.agent import service
from vaultmesh.services.agent.config import DEFAULT_ENV_FILE, AgentSettings, load_agent_settings
from vaultmesh.services.agent.errors import StateError
from vaultmesh.services.agent.state import resolve_node_id
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.logs import configure_logging

log = logging.getLogger("vaultmesh.agent")

ENV_HELP = """\
environment (seed 000; real variables override the env file):
  VAULTMESH_NODE_ID         node UUID (default: generated once, kept in the state dir)
  VAULTMESH_CC_URL          Command Center URL (default http://127.0.0.1:8088)
  VAULTMESH_OS_PROFILE      profile to report (default ArchVault)
  VAULTMESH_ROOT            directory checked for services_ok (default /var/lib/vaultmesh)
  VAULTMESH_HEARTBEAT_SECS  seconds between heartbeats (default 30)
  VAULTMESH_AGENT_TOKEN     host token sent as X-Host-Token on POST
  VAULTMESH_NATS_URL        when set, publish heartbeats to JetStream instead of POST
  VAULTMESH_STATE_DIR       where the node id is kept (default /var/lib/vaultmesh-agent)
  VAULTMESH_ALLOW_INSECURE_HTTP  allow http:// to a non-loopback host (default false)
  LOG_LEVEL / RUST_LOG      log level (default info)
"""


def register(sub: Any) -> None:
    """Add the `agent` sub-commands."""
    parser = sub.add_parser("agent", help="the node agent (heartbeats)")
    commands = parser.add_subparsers(dest="agent_command", metavar="SUBCOMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="send heartbeats until stopped",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(run)
    run.add_argument("--once", action="store_true", help="send one heartbeat; exit 0 if accepted")
    run.add_argument(
        "--new-node-id", action="store_true", help="replace the stored node id with a new one"
    )
    run.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http:// to a non-loopback Command Center",
    )
    run.set_defaults(func=run_command)
    node_id = commands.add_parser("node-id", help="print this node's id (creating it if needed)")
    _common(node_id)
    node_id.set_defaults(func=node_id_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help=f"agent.env file to read (default {DEFAULT_ENV_FILE} when it exists)",
    )


def _settings(args: argparse.Namespace, **overrides: Any) -> AgentSettings | None:
    try:
        return load_agent_settings(args.env_file, **overrides)
    except ConfigError as exc:
        configure_logging("agent")
        log.error(str(exc))
        return None


def run_command(args: argparse.Namespace) -> int:
    """`vaultmesh agent run`: 0 on a clean stop (or an accepted --once), 1 failed, 2 config."""
    overrides = {"allow_insecure_http": True} if args.allow_insecure_http else {}
    settings = _settings(args, **overrides)
    if settings is None:
        return 2
    configure_logging("agent", settings.level())
    # httpx logs every request at info; the agent logs its own outcome of each heartbeat.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        agent = service.build_agent(settings, regenerate=args.new_node_id)
    except StateError as exc:
        log.error(str(exc))
        return 2
    return uvloop.run(service.run(agent, once=args.once))


def node_id_command(args: argparse.Namespace) -> int:
    """`vaultmesh agent node-id`: print the node id the agent uses."""
    settings = _settings(args)
    if settings is None:
        return 2
    try:
        print(resolve_node_id(settings.state_dir, settings.node_id))
    except StateError as exc:
        configure_logging("agent")
        log.error(str(exc))
        return 2
    return 0
