"""Requests and replies of the ``logs`` micro service (``logs.view`` ...)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, model_validator

from vaultmesh.services.logger import timespec
from vaultmesh.shared import subjects
from vaultmesh.shared.models.common import Severity, StrictModel

MAX_WAIT_S = 30.0
MAX_LIMIT = 10_000


def _pattern(value: str) -> str:
    if not subjects.is_pattern(value):
        raise ValueError("not a subject or wildcard pattern (tokens, '*', final '>')")
    return value


TimeSpec = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(timespec.check)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
SubjectPattern = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_pattern)]
Seq = Annotated[int, Field(ge=0)]
Size = Annotated[int, Field(ge=1)]


class EntryFilter(StrictModel):
    """Filters shared by ``view`` and ``stats``."""

    kind: Name | None = None
    node: Name | None = None
    subject: SubjectPattern | None = None
    since: TimeSpec | None = None
    until: TimeSpec | None = None
    min_severity: Severity | None = None


class ViewRequest(EntryFilter):
    """``logs.view``: entries, newest first unless ``order`` is ``oldest``."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 100
    order: Literal["newest", "oldest"] = "newest"
    # Cursors: only entries with seq > after_seq and seq < before_seq.
    after_seq: Annotated[int, Field(ge=-1)] | None = None
    before_seq: Seq | None = None
    # A long poll (with after_seq): when nothing matches yet, answer as soon as a matching
    # entry is written, or with none after this many seconds.
    wait_s: Annotated[float, Field(ge=0, le=MAX_WAIT_S)] = 0.0


class StatsRequest(EntryFilter):
    """``logs.stats``: counts over a window (the last 24 hours unless ``since`` says otherwise)."""

    since: TimeSpec | None = "-24h"


class ProofRequest(StrictModel):
    """``logs.proof``: an inclusion proof (``seq``) or a consistency proof (``first``)."""

    type: Literal["inclusion", "consistency"] = "inclusion"
    seq: Seq | None = None
    tree_size: Size | None = None
    first: Size | None = None
    second: Size | None = None

    @model_validator(mode="after")
    def _needs_its_fields(self) -> Self:
        if self.type == "inclusion" and (self.seq is None or self.first or self.second):
            raise ValueError("an inclusion proof takes seq (and optionally tree_size)")
        if self.type == "consistency" and (self.first is None or self.seq is not None):
            raise ValueError("a consistency proof takes first (and optionally second)")
        return self


class CheckpointRequest(StrictModel):
    """``logs.checkpoint``: the latest signed checkpoint, or the one of ``tree_size``."""

    tree_size: Size | None = None
    # Sign a new checkpoint now if the log grew since the last one.
    create: bool = False


class EntryList(BaseModel):
    """Reply of ``logs.view``; ``size`` is the number of committed entries when it ran."""

    entries: list[dict[str, Any]]
    size: int


class Stats(BaseModel):
    """Reply of ``logs.stats``."""

    total: int
    by_node: dict[str, int]
    by_kind: dict[str, int]
    by_severity: dict[str, int]
    first_seq: int | None
    last_seq: int | None
    since: str | None
    until: str | None
    size: int
