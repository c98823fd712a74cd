"""The ``fleet`` micro service endpoints: thin handlers over the registry, stream and window."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from vaultmesh.shared import subjects
from vaultmesh.shared.micro import Call, Endpoint
from vaultmesh.shared.models.events import EventsQuery
from vaultmesh.shared.models.fleet import (
    DeleteNodeRequest,
    HistoryRequest,
    ListNodesRequest,
    NodeRequest,
)

from .errors import UnknownNode
from .events import EventWindow
from .history import HeartbeatHistoryReader
from .registry import Registry
from .removal import Removal
from .views import counts_view, node_view


class FleetApi:
    """Answers ``fleet.api.<op>`` requests."""

    def __init__(
        self,
        registry: Registry,
        window: EventWindow,
        history: HeartbeatHistoryReader,
        delete: Callable[[str, str], Awaitable[Removal | None]],
    ) -> None:
        self._registry = registry
        self._delete = delete
        self._window = window
        self._history = history
        self._default_interval = registry.policy.default_interval_s

    def endpoints(self) -> list[Endpoint]:
        """The endpoints to register on the micro service."""
        return [
            Endpoint("list", subjects.fleet_api("list"), self.list_nodes, ListNodesRequest),
            Endpoint("get", subjects.fleet_api("get"), self.get_node, NodeRequest),
            Endpoint(
                "history",
                subjects.fleet_api("history"),
                self.history,
                HistoryRequest,
                concurrent=True,  # waits on the stream
            ),
            Endpoint(
                "delete",
                subjects.fleet_api("delete"),
                self.delete_node,
                DeleteNodeRequest,
                concurrent=True,  # waits on KV
            ),
            Endpoint("counts", subjects.fleet_api("counts"), self.counts),
            Endpoint("events", subjects.fleet_api("events"), self.events, EventsQuery),
        ]

    async def list_nodes(self, call: Call[ListNodesRequest]) -> dict[str, Any]:
        """``NodeList``: nodes by hostname, optionally filtered by status, paged."""
        query = call.payload
        nodes, total = self._registry.select(query.status, query.offset, query.limit)
        views = [node_view(node, self._default_interval) for node in nodes]
        return {"nodes": views, "total": total}

    async def get_node(self, call: Call[NodeRequest]) -> dict[str, Any]:
        """``NodeView`` of one node, or not_found."""
        query = call.payload
        node_id = str(query.node_id)
        node = self._registry.get(node_id)
        if node is None:
            raise UnknownNode(node_id)
        return node_view(node, self._default_interval)

    async def history(self, call: Call[HistoryRequest]) -> dict[str, Any]:
        """``HeartbeatHistory``: the node's stored heartbeats, newest first."""
        query = call.payload
        node_id = str(query.node_id)
        if self._registry.get(node_id) is None:
            raise UnknownNode(node_id)
        beats = await self._history.newest(node_id, query.limit)
        return {"node_id": node_id, "heartbeats": beats}

    async def delete_node(self, call: Call[DeleteNodeRequest]) -> dict[str, Any]:
        """``NodeRemoval``: remove the node from the registry and FLEET_STATE, or not_found."""
        query = call.payload
        node_id = str(query.node_id)
        removal = await self._delete(node_id, query.by)
        if removal is None:
            raise UnknownNode(node_id)
        return removal.view().model_dump(mode="json")

    async def counts(self, _call: Call[object]) -> dict[str, int]:
        """``FleetCounts``: total / healthy / attention / critical."""
        return counts_view(self._registry.counts())

    async def events(self, call: Call[EventsQuery]) -> dict[str, Any]:
        """``EventList``: recent events from the working set, newest first."""
        query = call.payload
        return self._window.reply(query)
