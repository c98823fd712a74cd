"""Model building blocks shared by several wire models."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, PlainSerializer

from vaultmesh.shared.clock import rfc3339


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# An RFC 3339 timestamp: must carry a zone on input, always UTC ("Z") on output.
Timestamp = Annotated[
    AwareDatetime, AfterValidator(_utc), PlainSerializer(rfc3339, return_type=str)
]


class StrictModel(BaseModel):
    """Requests from operators and services: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Severity(StrEnum):
    """Severity of an event or log entry, lowest first (syslog-like)."""

    DEBUG = "debug"
    INFO = "info"
    NOTICE = "notice"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position on the scale, for minimum-severity filters."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = list(Severity)
