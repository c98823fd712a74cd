"""The audit log: segments + Merkle tree + checkpoints, and recovery after a crash.

Directory layout (``VAULTMESH_DATA_DIR``)::

    segments/segment-<first seq>.jsonl   the entries (append-only JSONL)
    tree/level-NN.bin                    the Merkle tree's perfect subtrees (a cache)
    PROOFCHAIN.json, ROOT.txt            signed checkpoints
    checkpoint.pub                       public key(s) that verify them
    state.json                           recovery anchor: tree size and stream positions
                                         as of the last checkpoint

Durability: ``commit`` (``stage`` then ``apply``) writes a batch, fsyncs it once, then
extends the tree; only then may the caller acknowledge the messages. The running
logger stores each staged batch and each checkpoint in its replicated copy first
(``replica``), and ``adopt``/``add_checkpoint`` take back what only that copy holds.
A jump in a stream's sequence is written as a gap entry before the message after it
(``gaps``).
``checkpoint`` fsyncs the tree files, signs, appends to the chain and writes
``state.json``. On ``open`` the log cuts a torn tail, rolls the tree back to the
anchor, replays the entries written since (re-deriving the tree and each
stream's high-water mark), and refuses to run if the result disagrees with the
latest signed checkpoint.

One thread writes (``commit``/``checkpoint``); readers (``snapshot``, proofs) may
run in other threads at the same time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from vaultmesh.services.logger import entry, merkle, proofs
from vaultmesh.services.logger.batch import Committed, Staged
from vaultmesh.services.logger.checkpoint import (
    Checkpoint,
    ProofChain,
    chain_link_ok,
    sign_checkpoint,
)
from vaultmesh.services.logger.errors import LogCorrupt
from vaultmesh.services.logger.gaps import Gap, gap_before, gap_note
from vaultmesh.services.logger.segments import SegmentStore, read_forward
from vaultmesh.services.logger.signing import (
    Signer,
    load_public_pem,
    public_pem,
    publish_public_key,
)
from vaultmesh.services.logger.snapshot import LogSnapshot
from vaultmesh.services.logger.treestore import FileTree
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import Clock
from vaultmesh.shared.files import atomic_write

log = logging.getLogger(__name__)

PUBLIC_KEY_FILE = "checkpoint.pub"
STATE_FILE = "state.json"
SEGMENTS_DIR = "segments"
TREE_DIR = "tree"
_REPLAY_BATCH = 4096


class AuditLog:
    """One log directory, opened for writing."""

    def __init__(
        self,
        directory: Path,
        segments: SegmentStore,
        tree: FileTree,
        chain: ProofChain,
        signer: Signer,
        clock: Clock,
    ) -> None:
        self.directory = directory
        self._segments = segments
        self._tree = tree
        self.chain = chain
        self._signer = signer
        self._clock = clock
        self._hwm: dict[str, int] = {}
        # When each stream was created, as JetStream reports it: a change means re-created.
        self.stream_created: dict[str, str] = {}
        self._last_received = ""
        self._lock = threading.Lock()
        self._snapshot = LogSnapshot(segments.snapshot(), 0)
        self.duplicates = 0

    # ---- opening and recovery ----------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, *, signer: Signer, clock: Clock, log_id: str, segment_bytes: int
    ) -> AuditLog:
        """Open (creating) the log in ``directory`` and recover it; raise LogCorrupt if unsafe."""
        directory.mkdir(parents=True, exist_ok=True)
        segments = SegmentStore.open(directory / SEGMENTS_DIR, segment_bytes, entry.received_of)
        chain = ProofChain.load(directory, log_id)
        tree = FileTree.open(directory / TREE_DIR)
        publish_public_key(directory / PUBLIC_KEY_FILE, signer.public_key)
        opened = cls(directory, segments, tree, chain, signer, clock)
        opened._recover()
        return opened

    @property
    def signed_size(self) -> int:
        """Entries covered by the latest checkpoint."""
        return self._signed_size()

    def _signed_size(self) -> int:
        latest = self.chain.latest
        return latest.tree_size if latest else 0

    def _recover(self) -> None:
        if self._segments.snapshot()[0].first_seq != 0:
            raise LogCorrupt("the first segment does not start at entry 0", seq=0)
        self._cut_bad_tail()
        size, signed = self._segments.size, self._signed_size()
        if signed > size:
            raise LogCorrupt(f"checkpoint covers {signed} entries but the log holds {size}", size)
        anchor, self._hwm = self._read_anchor(size)
        if not self._tree_matches_chain(anchor):
            log.warning("tree files disagree with the checkpoints; rebuilding the tree")
            anchor, self._hwm = 0, {}
        self._tree.truncate(min(anchor, self._tree.size))
        self._replay(self._tree.size, size)
        latest = self.chain.latest
        if latest is not None and self._tree.subtree(0, signed) != latest.root_hash:
            raise LogCorrupt(
                f"the entries do not match checkpoint of tree size {signed}; run verify", signed
            )
        self._publish()

    def _cut_bad_tail(self) -> None:
        """Drop unreadable lines at the end of the active segment (never fsynced, never acked)."""
        active = self._segments.active()
        for seq, line in read_forward(active):
            try:
                ok = entry.parse_line(line)["seq"] == seq
            except entry.EntryError:
                ok = False
            if not ok:
                if seq < self._signed_size():
                    raise LogCorrupt(f"entry {seq} is damaged inside the signed log", seq)
                log.warning("cutting unreadable log tail", extra={"from_seq": seq})
                self._segments.truncate_active(seq - active.first_seq)
                return

    def _read_anchor(self, size: int) -> tuple[int, dict[str, int]]:
        try:
            state = orjson.loads((self.directory / STATE_FILE).read_bytes())
            anchor, hwm = int(state["size"]), {str(k): int(v) for k, v in state["hwm"].items()}
            created = state.get("created", {})
            self.stream_created = {str(k): str(v) for k, v in created.items()}
        except FileNotFoundError:
            return 0, {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            log.warning("state.json unreadable; replaying the whole log")
            return 0, {}
        if not 0 <= anchor <= min(size, self._tree.size):
            return 0, {}
        return anchor, hwm

    def _tree_matches_chain(self, anchor: int) -> bool:
        sizes = [cp.tree_size for cp in self.chain.checkpoints if 0 < cp.tree_size <= anchor]
        if not sizes:
            return True
        cp = self.chain.at_size(max(sizes))
        assert cp is not None
        return self._tree.subtree(0, cp.tree_size) == cp.root_hash

    def _replay(self, start: int, end: int) -> None:
        """Re-derive tree nodes and stream positions for entries ``start``..``end``."""
        leaves: list[bytes] = []
        for seq, line in self._lines(start, end):
            self._absorb(seq, line)
            leaves.append(merkle.leaf_hash(line))
            if len(leaves) >= _REPLAY_BATCH:
                self._tree.append(leaves)
                leaves = []
        self._tree.append(leaves)
        if start < end:
            log.info("replayed log tail", extra={"from_seq": start, "entries": end - start})
        if not self._last_received and end > 0:
            self._last_received = entry.received_of(self._snapshot_line(end - 1))

    def _absorb(self, seq: int, line: bytes) -> None:
        """Take a stored line's stream mark and receive time (replay and adoption)."""
        try:
            parsed = entry.parse_line(line)
            self._hwm[str(parsed["stream"])] = int(parsed["stream_seq"])
            self._last_received = max(self._last_received, str(parsed["received"]))
        except (entry.EntryError, KeyError, ValueError, TypeError):
            raise LogCorrupt(f"entry {seq} is damaged; run verify", seq) from None
        if parsed["seq"] != seq:
            raise LogCorrupt(f"entry {seq} carries sequence {parsed['seq']}", seq)

    def lines(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(seq, line) of the written entries ``start``..``end`` (the writer's view)."""
        return self._lines(start, end)

    def add_public_key(self, pem: bytes) -> None:
        """List another key that signed checkpoints of this log in ``checkpoint.pub``."""
        publish_public_key(self.directory / PUBLIC_KEY_FILE, load_public_pem(pem))

    def _lines(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        for seg in self._segments.snapshot():
            if seg.end_seq > start and seg.first_seq < end:
                for seq, line in read_forward(seg, start):
                    if seq >= end:
                        return
                    yield seq, line

    def _snapshot_line(self, seq: int) -> bytes:
        return LogSnapshot(self._segments.snapshot(), self._segments.size).line(seq)

    def _publish(self) -> None:
        self._segments.publish()
        with self._lock:
            self._snapshot = LogSnapshot(self._segments.snapshot(), self._tree.size)

    # ---- writing ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Entries committed (durable and in the tree)."""
        return self._snapshot.size

    def hwm(self, stream: str) -> int:
        """The highest stream sequence of ``stream`` that is in the log (0: none)."""
        return self._hwm.get(stream, 0)

    def stage_reset(self, stream: str) -> Staged:
        """The entry noting that ``stream`` restarted its sequence (its mark starts afresh).

        The note is an entry of its own (stream sequence 0), so the log shows why the
        stream's sequence goes back, and replay and ``verify`` reset their marks there.
        """
        note = {"event": "stream_sequence_reset", "previous_stream_seq": self.hwm(stream)}
        body = orjson.dumps({"stream": stream, **note})
        reset = entry.Incoming(stream, 0, subjects.LOGGER_STREAM_RESET, body)
        return self._stage([reset], {**self._hwm, stream: 0}, [], 0)

    def reset_stream(self, stream: str) -> None:
        """Write ``stage_reset(stream)`` (the log alone, without a replica)."""
        self.apply(self.stage_reset(stream))

    def _received_now(self) -> str:
        # Receive times never go backwards, so log order is time order (see entry.py).
        return max(entry.stamp(self._clock.now()), self._last_received)

    def stage(self, messages: Sequence[entry.Incoming]) -> Staged:
        """Build the lines for ``messages`` (skipping ones already logged); nothing changes yet.

        A message that jumps over stream sequences is preceded by a gap entry (see
        ``gaps``): whatever the caller does, the log never skips a sequence silently.
        """
        lines: list[entry.Incoming] = []
        found: list[tuple[int, Gap]] = []
        hwm, duplicates = dict(self._hwm), 0
        for msg in messages:
            mark = hwm.get(msg.stream, 0)
            if msg.stream_seq <= mark:
                duplicates += 1
                continue
            gap = gap_before(mark, msg)
            if gap is not None:
                found.append((self._tree.size + len(lines), gap))
                lines.append(gap_note(gap, msg.stored_ns))
            lines.append(msg)
            hwm[msg.stream] = msg.stream_seq
        return self._stage(lines, hwm, found, duplicates)

    def _stage(
        self,
        messages: list[entry.Incoming],
        hwm: dict[str, int],
        gaps: list[tuple[int, Gap]],
        duplicates: int,
    ) -> Staged:
        received, first = self._received_now(), self._tree.size
        lines = [entry.build_line(first + i, received, msg) for i, msg in enumerate(messages)]
        written = len(lines) - len(gaps) - sum(m.stream_seq == 0 for m in messages)
        return Staged(first, received, lines, hwm, gaps, written, duplicates)

    def apply(self, staged: Staged) -> Committed:
        """Write, fsync and hash a staged batch (staged against the log as it still is)."""
        if staged.first != self._tree.size:
            raise LogCorrupt(f"a batch staged at entry {staged.first} is stale", staged.first)
        self.duplicates += staged.duplicates
        if staged.lines:
            self._segments.append(staged.lines, staged.received)
            self._segments.sync()
            self._tree.append([merkle.leaf_hash(line) for line in staged.lines])
            self._last_received = staged.received
        self._hwm = dict(staged.hwm)
        self._publish()
        return Committed(staged.written, staged.gaps)

    def commit(self, messages: Sequence[entry.Incoming]) -> Committed:
        """Stage and write ``messages`` at once (the log alone, without a replica)."""
        return self.apply(self.stage(messages))

    def adopt(self, lines: Sequence[bytes]) -> None:
        """Append lines written before by this log's writer (read back from its replica).

        They are taken as they are — the next checkpoint adopted must match them — and
        each must carry the next sequence number.
        """
        first = self._tree.size
        for i, line in enumerate(lines):
            self._absorb(first + i, line)
        start = 0
        for i in range(1, len(lines) + 1):
            # Grouped by receive time, so each segment's time range stays exact.
            if i == len(lines) or entry.received_of(lines[i]) != entry.received_of(lines[start]):
                self._segments.append(list(lines[start:i]), entry.received_of(lines[start]))
                start = i
        self._segments.sync()
        self._tree.append([merkle.leaf_hash(line) for line in lines])
        self._publish()

    def next_checkpoint(self) -> Checkpoint | None:
        """Sign the current tree head if it grew since the last checkpoint (not yet recorded)."""
        size, latest = self._tree.size, self.chain.latest
        if size == 0 or (latest is not None and latest.tree_size == size):
            return None
        root = self._tree.subtree(0, size)
        when = entry.stamp(self._clock.now())
        return sign_checkpoint(self._signer, self.chain.log_id, size, root, when, latest)

    def add_checkpoint(self, cp: Checkpoint) -> None:
        """Record ``cp`` (it must extend the chain and match the tree) with the anchor state."""
        if not chain_link_ok(self.chain.latest, cp):
            raise LogCorrupt(f"checkpoint of tree size {cp.tree_size} does not extend the chain")
        if not 0 < cp.tree_size <= self._tree.size:
            raise LogCorrupt(f"checkpoint covers {cp.tree_size} entries", cp.tree_size)
        if self._tree.subtree(0, cp.tree_size) != cp.root_hash:
            raise LogCorrupt(f"the entries do not match checkpoint {cp.tree_size}", cp.tree_size)
        self._tree.sync()
        self.chain.append(cp)
        if cp.tree_size == self._tree.size:  # the recovery anchor needs the marks at its size
            state = {"size": cp.tree_size, "hwm": self._hwm, "created": self.stream_created}
            atomic_write(self.directory / STATE_FILE, orjson.dumps(state))

    def checkpoint(self) -> Checkpoint | None:
        """Sign and record a checkpoint if the log grew (the log alone, without a replica)."""
        cp = self.next_checkpoint()
        if cp is not None:
            self.add_checkpoint(cp)
        return cp

    def close(self) -> None:
        """Close files (idempotent)."""
        self._segments.close()
        self._tree.close()

    # ---- reading (any thread) ------------------------------------------------------------

    def snapshot(self) -> LogSnapshot:
        """A consistent view of the committed log for a query."""
        with self._lock:
            return self._snapshot

    @property
    def public_key_pem(self) -> str:
        """The PEM of the key that signs new checkpoints."""
        return public_pem(self._signer.public_key).decode()

    @property
    def key_id(self) -> str:
        """Id of the key that signs new checkpoints."""
        return self._signer.key_id

    def inclusion(self, seq: int, tree_size: int | None = None) -> dict[str, Any]:
        """An inclusion proof for entry ``seq``, against a signed tree when possible."""
        snap = self.snapshot()
        return proofs.inclusion(snap, self._signed_size(), self.chain, self._tree, seq, tree_size)

    def consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        """A consistency proof from the tree of ``first`` to ``second`` (default: latest signed)."""
        snap = self.snapshot()
        return proofs.consistency(snap, self._signed_size(), self.chain, self._tree, first, second)
