"""One batch on its way into the log: staged (lines built), then committed."""

from __future__ import annotations

from dataclasses import dataclass

from vaultmesh.services.logger.gaps import Gap


@dataclass(frozen=True)
class Staged:
    """A batch ready to write: its lines, built but not yet in the log (see ``stage``)."""

    first: int  # log sequence of the first line
    received: str
    lines: list[bytes]
    hwm: dict[str, int]  # each stream's mark once these lines are written
    gaps: list[tuple[int, Gap]]
    written: int  # captured messages among the lines (gap and reset notes not counted)
    duplicates: int = 0


@dataclass(frozen=True)
class Committed:
    """What one ``commit`` wrote."""

    written: int  # captured messages written (gap entries not counted)
    gaps: list[tuple[int, Gap]]  # each gap found, with the log sequence of its entry
