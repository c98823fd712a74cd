"""The agent process: its options, then settings, logging, uvloop and exit codes through the
shared runtime (``run_process``), and the agent run until SIGTERM/SIGINT or for one beat.

``python -m vaultmesh.services.agent`` and ``vaultmesh agent run`` both end in ``run``.
Exit codes: 0 a clean stop (or an accepted ``--once``), 1 ``--once`` not accepted,
2 configuration or node-id state.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from vaultmesh.services.agent.config import DEFAULT_ENV_FILE, AgentSettings, load_agent_settings
from vaultmesh.services.agent.errors import StateError
from vaultmesh.services.agent.service import build_for
from vaultmesh.services.agent.state import resolve_node_id
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.logs import configure_logging
from vaultmesh.shared.runtime import run_process, until_signalled

NAME = "agent"
log = logging.getLogger(__name__)

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


def add_env_file_option(parser: argparse.ArgumentParser) -> None:
    """``--env-file``: the agent.env file to read."""
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help=f"agent.env file to read (default {DEFAULT_ENV_FILE} when it exists)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``run``."""
    add_env_file_option(parser)
    parser.add_argument(
        "--once", action="store_true", help="send one heartbeat; exit 0 if accepted"
    )
    parser.add_argument(
        "--new-node-id", action="store_true", help="replace the stored node id with a new one"
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http:// to a non-loopback Command Center",
    )


def run(args: argparse.Namespace) -> int:
    """Run the agent as ``args`` say; the process exit code."""
    overrides = {"allow_insecure_http": True} if args.allow_insecure_http else {}

    def load() -> AgentSettings:
        return load_agent_settings(args.env_file, **overrides)

    async def main(settings: AgentSettings) -> int:
        return await serve(settings, once=args.once, regenerate=args.new_node_id)

    return run_process(NAME, load, main)


async def serve(settings: AgentSettings, *, once: bool = False, regenerate: bool = False) -> int:
    """Beat once or until SIGTERM/SIGINT; the exit code."""
    # httpx logs every request at info; the agent logs its own outcome of each heartbeat.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        agent = build_for(settings, regenerate=regenerate)
    except StateError as exc:
        log.error(str(exc))
        return 2
    async with agent:
        delivered = await until_signalled(agent.beat() if once else agent.run())
    if delivered is None:  # a signal stopped it (``run`` never returns by itself)
        log.info("agent stopped by signal")
        return 1 if once else 0
    return 0 if delivered else 1


def print_node_id(env_file: Path | None) -> int:
    """Print the node id the agent uses (creating it); the exit code."""
    try:
        settings = load_agent_settings(env_file)
        print(resolve_node_id(settings.state_dir, settings.node_id))
    except (ConfigError, StateError) as exc:
        configure_logging(NAME)
        log.error(str(exc))
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vaultmesh.services.agent [options]``: the same as ``vaultmesh agent run``."""
    parser = argparse.ArgumentParser(
        prog="python -m vaultmesh.services.agent",
        description="the node agent: send heartbeats until stopped",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser)
    return run(parser.parse_args(argv))
