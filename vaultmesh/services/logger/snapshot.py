"""What readers of the log see: the committed segments and the tree size they add up to."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from vaultmesh.services.logger.segments import Segment, read_forward


@dataclass(frozen=True)
class LogSnapshot:
    """What readers may see: committed segments and the tree size they add up to."""

    segments: tuple[Segment, ...]
    size: int

    def segment_of(self, seq: int) -> Segment:
        """The segment holding entry ``seq``."""
        firsts = [seg.first_seq for seg in self.segments]
        return self.segments[bisect.bisect_right(firsts, seq) - 1]

    def line(self, seq: int) -> bytes:
        """The exact line of entry ``seq``."""
        if not 0 <= seq < self.size:
            raise IndexError(seq)
        for _seq, line in read_forward(self.segment_of(seq), seq):
            return line
        raise IndexError(seq)
