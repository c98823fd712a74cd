"""Offline verification of a log directory (``vaultmesh logs verify --dir``).

Needs only the directory (or a copy of it) and the public key; writes nothing.

1. every checkpoint in PROOFCHAIN.json carries a valid Ed25519 signature by a
   trusted key and links to its predecessor; ROOT.txt is the latest of them;
2. the segments are contiguous, every line is an entry whose ``seq`` is its
   position, and no stream sequence repeats or goes back (nothing doubled);
3. the Merkle tree recomputed from the lines has, at every checkpoint's size,
   that checkpoint's root, and consecutive checkpoints are consistent (a proof
   built from the recomputed tree verifies against both signed roots);
4. each stream's sequence has no hole: a jump must be recorded by a gap entry
   (``gaps``), and even a recorded gap fails unless ``accept_gaps`` (then only a
   signed gap entry is accepted, and still reported);
5. with a ``trusted`` checkpoint seen before, the log is an extension of it
   (``trusted``): a rollback or a rewritten history fails.

When a checkpoint's root does not match, the stored tree files, if they still
reproduce the signed root, are authenticated by it, and the first line whose
hash differs from its signed leaf is named; otherwise the report names the
range of entries between the last good checkpoint and the bad one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultmesh.services.logger import merkle
from vaultmesh.services.logger.auditlog import PUBLIC_KEY_FILE, SEGMENTS_DIR, TREE_DIR
from vaultmesh.services.logger.checkpoint import (
    CHAIN_FILE,
    ROOT_FILE,
    Checkpoint,
    chain_link_ok,
    read_chain,
)
from vaultmesh.services.logger.entry import EntryError, parse_line
from vaultmesh.services.logger.errors import CheckpointError, SigningKeyError
from vaultmesh.services.logger.gaps import Gap, gap_of, is_gap_entry
from vaultmesh.services.logger.segments import Segment, list_segments, read_forward
from vaultmesh.services.logger.signing import load_public_keys, signature_ok
from vaultmesh.services.logger.tree import MemoryTree
from vaultmesh.services.logger.treestore import FileTree
from vaultmesh.services.logger.trusted import Trusted, check_extension
from vaultmesh.shared import subjects

_BATCH = 4096


@dataclass
class Report:
    """What verification found."""

    entries: int = 0
    checkpoints: int = 0
    signed_size: int = 0
    # Root of the latest signed checkpoint: keep "signed_size:signed_root" for --trusted.
    signed_root: str = merkle.EMPTY_ROOT.hex()
    root_hash: str = merkle.EMPTY_ROOT.hex()
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    # Recorded gaps: stream, from_seq, to_seq, missing, seq (of the gap entry), signed.
    gaps: list[dict[str, Any]] = field(default_factory=list)
    trusted: str | None = None  # the trusted checkpoint checked against, SIZE:ROOT

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (warnings allowed)."""
        return not self.problems

    def bad(self, message: str, seq: int | None = None) -> None:
        """Record a problem, remembering the earliest bad entry."""
        self.problems.append(message)
        if seq is not None and (self.first_bad_seq is None or seq < self.first_bad_seq):
            self.first_bad_seq = seq

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"ok": self.ok, **self.__dict__}


class _EntryWalk:
    """Reads every line once: checks it, hashes it into a fresh tree."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.tree = MemoryTree()
        self._leaves: list[bytes] = []
        self._streams: dict[str, int] = {}
        self.gaps: list[tuple[int, Gap]] = []  # recorded gaps and their entries' seqs

    def walk(self, directory: Path) -> None:
        """Check and hash every segment in ``directory``, in order."""
        found = list_segments(directory)
        for index, (first, path) in enumerate(found):
            if first != self.tree.size + len(self._leaves):
                self.report.bad(
                    f"segment {path.name} starts at entry {first}, "
                    f"but entry {self.tree.size + len(self._leaves)} comes next",
                    self.tree.size + len(self._leaves),
                )
            self._segment(path, first, last=index == len(found) - 1)
        self._flush()

    def _segment(self, path: Path, first: int, last: bool) -> None:
        data_len = path.stat().st_size
        with path.open("rb") as fh:
            fh.seek(max(0, data_len - 1))
            ends_clean = data_len == 0 or fh.read(1) == b"\n"
        seg = Segment(path, first, 1 << 62, data_len)
        seq = self.tree.size + len(self._leaves)
        for _pos, line in read_forward(seg):
            self._entry(seq, line)
            seq += 1
        if not ends_clean:
            where = f"{path.name} ends in a partial line after entry {seq - 1}"
            if last:
                self.report.warnings.append(where + " (a write in progress; not signed)")
            else:
                self.report.bad(where, seq)

    def _entry(self, seq: int, line: bytes) -> None:
        try:
            entry = parse_line(line)
        except EntryError as exc:
            self.report.bad(f"entry {seq}: {exc}", seq)
        else:
            self._check_fields(seq, entry)
        self._leaves.append(merkle.leaf_hash(line))
        if len(self._leaves) >= _BATCH:
            self._flush()

    def _check_fields(self, seq: int, entry: dict[str, Any]) -> None:
        if entry["seq"] != seq:
            self.report.bad(f"entry {seq} says it is entry {entry['seq']}", seq)
        stream, stream_seq = entry.get("stream"), entry.get("stream_seq")
        if entry.get("subject") == subjects.LOGGER_STREAM_RESET and stream_seq == 0:
            self._streams[str(stream)] = 0  # the logger noted that the stream restarted
        elif isinstance(stream, str) and isinstance(stream_seq, int):
            previous = self._streams.get(stream, 0)
            if stream_seq <= previous:
                self.report.bad(
                    f"entry {seq} repeats or reorders {stream} sequence {stream_seq} "
                    f"(after {previous})",
                    seq,
                )
            elif is_gap_entry(entry):
                self._gap_entry(seq, entry, previous)
            elif stream_seq > previous + 1:
                hole = Gap(stream, previous + 1, stream_seq - 1)
                self.report.bad(
                    f"entry {seq} jumps over {hole.describe()} and no gap entry records it", seq
                )
            self._streams[stream] = stream_seq

    def _gap_entry(self, seq: int, entry: dict[str, Any], previous: int) -> None:
        gap = gap_of(entry)
        if gap is None or gap.first != previous + 1:
            self.report.bad(f"entry {seq} is a malformed gap entry", seq)
        else:
            self.gaps.append((seq, gap))

    def _flush(self) -> None:
        self.tree.append(self._leaves)
        self._leaves = []


def _check_signatures(chain: list[Checkpoint], keys: dict[str, Any], report: Report) -> None:
    previous: Checkpoint | None = None
    for number, cp in enumerate(chain):
        label = f"checkpoint #{number} (tree size {cp.tree_size})"
        key = keys.get(cp.key_id)
        if key is None:
            report.bad(f"{label} is signed by unknown key {cp.key_id}")
        elif not signature_ok(key, cp.body(), cp.signature):
            report.bad(f"{label} has a bad signature")
        if not chain_link_ok(previous, cp):
            report.bad(f"{label} does not link to the checkpoint before it")
        if previous is not None and cp.tree_size < previous.tree_size:
            report.bad(f"{label} is smaller than the checkpoint before it")
        previous = cp


def _check_root_file(directory: Path, chain: list[Checkpoint], report: Report) -> None:
    if not chain:
        return
    try:
        text = (directory / ROOT_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        report.bad(f"{ROOT_FILE} is missing or unreadable")
        return
    if text != chain[-1].note():
        report.bad(f"{ROOT_FILE} is not the latest checkpoint of {CHAIN_FILE}")


def _check_roots(chain: list[Checkpoint], walk: _EntryWalk, directory: Path) -> None:
    report, tree = walk.report, walk.tree
    good_size, previous = 0, None
    for number, cp in enumerate(chain):
        if cp.tree_size > tree.size:
            report.bad(
                f"checkpoint #{number} covers {cp.tree_size} entries but only {tree.size} exist",
                tree.size,
            )
            return
        if tree.root(cp.tree_size) != cp.root_hash:
            _locate(directory, good_size, cp, walk)
            return
        if previous is not None:
            _check_consistency(previous, cp, tree, report)
        good_size, previous = cp.tree_size, cp


def _check_consistency(old: Checkpoint, new: Checkpoint, tree: MemoryTree, report: Report) -> None:
    if old.tree_size == 0:
        return
    proof = tree.consistency(old.tree_size, new.tree_size)
    try:
        merkle.verify_consistency(old.tree_size, new.tree_size, proof, old.root_hash, new.root_hash)
    except merkle.ProofError as exc:
        report.bad(f"checkpoints of sizes {old.tree_size} and {new.tree_size}: {exc}")


def _locate(directory: Path, lo: int, cp: Checkpoint, walk: _EntryWalk) -> None:
    """Name the first changed entry below the failing checkpoint ``cp``."""
    hi = cp.tree_size
    stored = FileTree.open(directory / TREE_DIR, readonly=True)
    try:
        if stored.size >= hi and stored.subtree(0, hi) == cp.root_hash:
            for seq in range(lo, hi):
                if stored.leaf(seq) != walk.tree.leaf(seq):
                    walk.report.bad(f"entry {seq} was changed after it was signed", seq)
                    return
        walk.report.bad(
            f"an entry between {lo} and {hi - 1} was changed after it was signed "
            f"(checkpoint of tree size {hi} does not match)",
            lo,
        )
    finally:
        stored.close()


def _report_gaps(gaps: list[tuple[int, Gap]], report: Report, accept: bool) -> None:
    for seq, gap in gaps:
        signed = seq < report.signed_size
        report.gaps.append({**gap.to_json(), "seq": seq, "signed": signed})
        text = f"{gap.describe()} missing from the stream (gap recorded in entry {seq})"
        if accept and signed:
            report.warnings.append(f"{text}; accepted")
        elif accept:
            report.bad(f"{text}; not signed yet, so it cannot be accepted", seq)
        else:
            report.bad(f"{text}; accept recorded gaps with --accept-gaps", seq)


def verify_dir(
    directory: Path,
    public_key_file: Path | None = None,
    *,
    accept_gaps: bool = False,
    trusted: Trusted | None = None,
) -> Report:
    """Verify the log in ``directory`` against the public key(s) in ``public_key_file``.

    ``accept_gaps``: a gap recorded by a signed gap entry is a warning, not a failure.
    ``trusted``: a checkpoint seen before, which the log must extend.
    """
    report = Report()
    try:
        keys: dict[str, Any] = dict(
            load_public_keys(public_key_file or directory / PUBLIC_KEY_FILE)
        )
    except SigningKeyError as exc:
        report.bad(str(exc))
        keys = {}
    try:
        chain = read_chain(directory / CHAIN_FILE)
    except CheckpointError as exc:
        report.bad(str(exc))
        chain = []
    _check_signatures(chain, keys, report)
    _check_root_file(directory, chain, report)
    walk = _EntryWalk(report)
    walk.walk(directory / SEGMENTS_DIR)
    _check_roots(chain, walk, directory)
    report.entries, report.checkpoints = walk.tree.size, len(chain)
    report.signed_size = chain[-1].tree_size if chain else 0
    report.signed_root = chain[-1].root_hash.hex() if chain else merkle.EMPTY_ROOT.hex()
    report.root_hash = walk.tree.root().hex()
    _report_gaps(walk.gaps, report, accept_gaps)
    if trusted is not None:
        report.trusted = trusted.label()
        for problem in check_extension(trusted, chain, walk.tree, walk.tree.size, keys):
            report.bad(problem)
    unsigned = report.entries - report.signed_size
    if unsigned > 0:
        report.warnings.append(f"{unsigned} entries after the last checkpoint are not signed yet")
    return report
