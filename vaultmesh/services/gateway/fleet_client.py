"""Typed bus requests from the gateway to the fleet-state ``fleet`` micro service.

The gateway holds no fleet state: every answer comes from here.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from nats.aio.client import Client
from pydantic import BaseModel, ValidationError

from vaultmesh.services.gateway.errors import BadGateway
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.models.events import EventList, EventsQuery
from vaultmesh.shared.models.fleet import (
    DeleteNodeRequest,
    FleetCounts,
    HeartbeatHistory,
    ListNodesRequest,
    NodeList,
    NodeRemoval,
    NodeStatus,
    NodeView,
)

M = TypeVar("M", bound=BaseModel)


def _reply(model: type[M], data: object) -> M:
    """``data`` as ``model``; a reply that breaks the contract is a 502, not a crash."""
    try:
        return model.model_validate(data)
    except ValidationError:
        raise BadGateway(f"fleet-state sent a reply that is not a {model.__name__}") from None


class FleetClient:
    """Asks fleet-state over NATS and returns models."""

    def __init__(self, nc: Client, timeout: float = 5.0) -> None:
        self._nc = nc
        self._timeout = timeout

    async def list_nodes(
        self, status: NodeStatus | None = None, limit: int = 1000, offset: int = 0
    ) -> NodeList:
        """Nodes, optionally only those with ``status``."""
        query = ListNodesRequest(status=status, limit=limit, offset=offset)
        data = await self._ask("list", query.model_dump(mode="json", exclude_none=True))
        return _reply(NodeList, data)

    async def get_node(self, node_id: UUID) -> NodeView:
        """One node (raises NotFound when unknown)."""
        return _reply(NodeView, await self._ask("get", {"node_id": str(node_id)}))

    async def delete_node(self, node_id: UUID, by: str) -> NodeRemoval:
        """Remove a node from fleet-state (raises NotFound when unknown); ``by`` names who asked."""
        query = DeleteNodeRequest(node_id=node_id, by=by)
        return _reply(NodeRemoval, await self._ask("delete", query.model_dump(mode="json")))

    async def history(self, node_id: UUID, limit: int = 100) -> HeartbeatHistory:
        """A node's recent heartbeats, newest first."""
        data = await self._ask("history", {"node_id": str(node_id), "limit": limit})
        return _reply(HeartbeatHistory, data)

    async def counts(self, timeout: float | None = None) -> FleetCounts:
        """Fleet KPIs (``timeout`` overrides the default, e.g. for readiness probes)."""
        return _reply(FleetCounts, await self._ask("counts", None, timeout))

    async def events(self, query: EventsQuery) -> EventList:
        """Recent events from the working set, newest first."""
        data = await self._ask("events", query.model_dump(mode="json", exclude_none=True))
        return _reply(EventList, data)

    async def _ask(self, op: str, payload: object, timeout: float | None = None) -> object:
        wait = self._timeout if timeout is None else timeout
        return await bus.request(self._nc, subjects.fleet_api(op), payload, timeout=wait)
