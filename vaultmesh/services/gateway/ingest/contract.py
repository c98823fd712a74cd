"""The heartbeat endpoint as agents know it (seed 000): its path and its success answer.

Kept apart so that the bytes layer (framing.py), the handler and the route all
take them from one place below them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

PATH = "/api/agent/heartbeat"
ENDPOINT = f"POST {PATH}"  # its label in vaultmesh_requests_total
OK_BODY = b'{"status":"ok"}'


class StatusOk(BaseModel):
    """The seed 000 success reply."""

    status: Literal["ok"]
