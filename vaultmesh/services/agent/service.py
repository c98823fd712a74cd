"""The agent's builder and process lifecycle: wire settings to probes, transport and clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from uuid import UUID

from vaultmesh.services.agent import system
from vaultmesh.services.agent.config import AgentSettings
from vaultmesh.services.agent.daemon import Agent
from vaultmesh.services.agent.health import NodeIdentity, Probes
from vaultmesh.services.agent.http_sender import HttpSender
from vaultmesh.services.agent.nats_sender import NatsSender
from vaultmesh.services.agent.state import resolve_node_id
from vaultmesh.services.agent.transport import Sender
from vaultmesh.shared.clock import Clock, SystemClock

log = logging.getLogger(__name__)
_CLOSE_TIMEOUT = 0.5


def build_sender(settings: AgentSettings, node_id: UUID) -> Sender:
    """NATS when VAULTMESH_NATS_URL is set, else HTTP POST to the Command Center."""
    if settings.uses_nats:
        return NatsSender(settings, f"vaultmesh-agent-{node_id}", settings.effective_timeout)
    token = settings.agent_token.get_secret_value() if settings.agent_token else None
    return HttpSender(settings.cc_url, token, settings.effective_timeout)


def build_agent(
    settings: AgentSettings,
    *,
    regenerate: bool = False,
    probes: Probes | None = None,
    clock: Clock | None = None,
    sender: Sender | None = None,
) -> Agent:
    """An agent for this node (raises StateError when the node id cannot be kept)."""
    node_id = resolve_node_id(settings.state_dir, settings.node_id, regenerate)
    identity = NodeIdentity(
        node_id=node_id,
        hostname=settings.hostname or system.hostname(),
        os_profile=settings.os_profile,
        root=settings.root,
        interval_s=settings.heartbeat_secs,
    )
    return Agent(
        identity,
        probes or system.probes(),
        sender or build_sender(settings, node_id),
        clock or SystemClock(),
        check_timeout=min(settings.check_timeout, settings.heartbeat_secs),
    )


async def run(agent: Agent, *, once: bool = False) -> int:
    """Beat once or until SIGTERM/SIGINT; returns the exit code."""
    log.info(
        "agent starting",
        extra={
            "node_id": str(agent.identity.node_id),
            "target": agent.target,
            "interval_s": agent.identity.interval_s,
        },
    )
    loop = asyncio.get_running_loop()
    work: asyncio.Task[bool | None] = asyncio.create_task(_work(agent, once))
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, work.cancel)
    try:
        await asyncio.wait({work})
    except asyncio.CancelledError:
        # Cancelled from outside (not by a signal): stop the work too, then propagate.
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(agent.close(), _CLOSE_TIMEOUT)
    if work.cancelled():
        log.info("agent stopped by signal")
        return 1 if once else 0
    delivered = work.result()
    return 0 if delivered or not once else 1


async def _work(agent: Agent, once: bool) -> bool | None:
    if once:
        return await agent.beat()
    await agent.run()
    return None
