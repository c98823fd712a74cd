"""The logger's Merkle tree on disk: one append-only file of 32-byte hashes per level.

``tree/level-NN.bin`` holds the perfect subtrees of height NN in order, so level 0
is the leaf hashes and level k has ``size >> k`` hashes. The files are a cache of
what the JSONL segments determine: they are written with every batch but only
fsynced at checkpoints, and on open they are cut back to the largest size all
levels agree on. The log facade then rolls them back to the last durable anchor
and replays the segments from there (see ``auditlog``).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from vaultmesh.services.logger.merkle import HASH_SIZE
from vaultmesh.services.logger.tree import LevelTree
from vaultmesh.shared.files import write_all

_LEVEL_FILE = re.compile(r"^level-(\d{2})\.bin$")


def _level_path(directory: Path, level: int) -> Path:
    return directory / f"level-{level:02d}.bin"


class FileTree(LevelTree):
    """A ``LevelTree`` whose levels are files; reads use ``pread`` so readers never block."""

    def __init__(self, directory: Path, readonly: bool = False) -> None:
        super().__init__()
        self._dir = directory
        self._readonly = readonly
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()  # guards opening files, not reads or appends

    @classmethod
    def open(cls, directory: Path, readonly: bool = False) -> FileTree:
        """Open the tree in ``directory`` at the largest self-consistent size.

        For writing, the directory is created and every level is cut to that size;
        ``readonly`` (the offline verifier) changes nothing on disk.
        """
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
        tree = cls(directory, readonly)
        counts = tree._level_counts()
        size = counts.get(0, 0)
        for level in range(1, size.bit_length()):
            # Level k only supports sizes whose perfect subtrees of height k are all stored.
            size = min(size, ((counts.get(level, 0) + 1) << level) - 1)
        if readonly:
            tree._size = size
            tree._reload_frontier()
        else:
            tree._cut(size, counts)
        return tree

    def _level_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        if not self._dir.is_dir():
            return counts
        for path in self._dir.iterdir():
            match = _LEVEL_FILE.match(path.name)
            if match:
                counts[int(match.group(1))] = path.stat().st_size // HASH_SIZE
        return counts

    def _cut(self, size: int, counts: dict[int, int]) -> None:
        for level in counts:
            os.truncate(_level_path(self._dir, level), (size >> level) * HASH_SIZE)
        self._size = size
        self._reload_frontier()

    def truncate(self, size: int) -> None:
        """Roll the tree back to its first ``size`` leaves."""
        if not 0 <= size <= self._size:
            raise ValueError(f"cannot truncate a tree of {self._size} leaves to {size}")
        self._cut(size, self._level_counts())

    def _fd(self, level: int) -> int:
        fd = self._fds.get(level)
        if fd is None:
            with self._lock:
                fd = self._fds.get(level)
                if fd is None:
                    path = _level_path(self._dir, level)
                    flags = os.O_RDONLY if self._readonly else os.O_RDWR | os.O_CREAT | os.O_APPEND
                    fd = os.open(path, flags, 0o640)
                    self._fds[level] = fd
        return fd

    def _load(self, level: int, index: int) -> bytes:
        data = os.pread(self._fd(level), HASH_SIZE, index * HASH_SIZE)
        if len(data) != HASH_SIZE:
            raise OSError(f"tree level {level} has no node {index}")
        return data

    def _store(self, completed: list[bytearray]) -> None:
        for level, data in enumerate(completed):
            if data:
                write_all(self._fd(level), data)

    def sync(self) -> None:
        """fsync every level file (at checkpoints: the tree up to here is durable)."""
        for fd in list(self._fds.values()):
            os.fsync(fd)

    def close(self) -> None:
        """Close the level files (idempotent)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
