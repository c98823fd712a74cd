"""Audit records: what every service publishes to ``audit.<service>.<action>``.

Key names are HMAC'd by the producer; values and secrets never appear here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from vaultmesh.shared.models.common import Severity, Timestamp


class Outcome(StrEnum):
    """How a request ended."""

    ALLOWED = "allowed"
    DENIED = "denied"
    ERROR = "error"


class AuditRecord(BaseModel):
    """One audited action."""

    model_config = ConfigDict(extra="forbid")

    ts: Timestamp
    # Unique per record. Delivery is at least once: a record re-sent after a lost
    # acknowledgement may be stored twice, and both copies carry the same id.
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    service: Annotated[str, Field(min_length=1, max_length=64)]
    action: Annotated[str, Field(min_length=1, max_length=64)]
    principal: Annotated[str, Field(max_length=128)] = ""
    outcome: Outcome
    severity: Severity = Severity.INFO
    node_id: str | None = None
    key_hmac: str | None = None
    code: str | None = None
    latency_ms: Annotated[float, Field(ge=0)] | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
