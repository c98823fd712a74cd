"""Errors of the node agent.

They are operator-facing: messages name the variable, file or peer at fault and
never carry a token or a ``repr()`` of an exception.
"""

from __future__ import annotations

from vaultmesh.shared.errors import VaultMeshError


class AgentError(VaultMeshError):
    """Base of every agent error (under the shared root)."""


class StateError(AgentError):
    """The node-id state file cannot be read or written."""


class SendError(AgentError):
    """One heartbeat could not be delivered; the agent retries next interval."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
