"""The agent's builder: settings to node identity, probes, transport and clock."""

from __future__ import annotations

from uuid import UUID

from vaultmesh.services.agent import system
from vaultmesh.services.agent.config import AgentSettings
from vaultmesh.services.agent.daemon import Agent
from vaultmesh.services.agent.health import NodeIdentity
from vaultmesh.services.agent.http_sender import HttpSender
from vaultmesh.services.agent.nats_sender import NatsSender
from vaultmesh.services.agent.state import resolve_node_id
from vaultmesh.services.agent.transport import Sender
from vaultmesh.shared.clock import Clock, SystemClock


def build_for(
    settings: AgentSettings, clock: Clock | None = None, *, regenerate: bool = False
) -> Agent:
    """The agent of this node (raises StateError when the node id cannot be kept).

    Unlike a bus service's builder it needs no connection from the runtime: the agent
    opens its own transport (``regenerate``: replace the stored node id).
    """
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
        system.probes(),
        _sender(settings, node_id),
        clock or SystemClock(),
        check_timeout=min(settings.check_timeout, settings.heartbeat_secs),
    )


def _sender(settings: AgentSettings, node_id: UUID) -> Sender:
    """NATS when VAULTMESH_NATS_URL is set, else HTTP POST to the Command Center."""
    if settings.uses_nats:
        return NatsSender(settings, f"vaultmesh-agent-{node_id}", settings.effective_timeout)
    token = settings.agent_token.get_secret_value() if settings.agent_token else None
    return HttpSender(settings.cc_url, token, settings.effective_timeout)
