"""fleet-state errors: what a heartbeat or event can be rejected for, and lookups that fail."""

from __future__ import annotations

from vaultmesh.shared.errors import BadRequest, NotFound, register_error


@register_error
class NodeMismatch(BadRequest):
    """A heartbeat's subject names a different node than its body."""

    code = "node_mismatch"


class UnknownNode(NotFound):
    """No heartbeat from this node has been seen."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"no node {node_id} is registered")
        self.node_id = node_id
