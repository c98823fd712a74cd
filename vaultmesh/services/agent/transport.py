"""How a heartbeat leaves the node: the ``Sender`` protocol both transports implement."""

from __future__ import annotations

from typing import Protocol

from vaultmesh.shared.models.heartbeat import Heartbeat


class Sender(Protocol):
    """Delivers heartbeats; raises ``SendError`` when one was not accepted."""

    @property
    def target(self) -> str:
        """Where heartbeats go, for logs (never contains a credential)."""
        ...

    async def send(self, heartbeat: Heartbeat) -> None:
        """Deliver one heartbeat, within the sender's timeout."""
        ...

    async def close(self) -> None:
        """Release connections; quick, and safe to call twice."""
        ...
