"""The embedded SQLite backend: WAL journal, a full fsync on every commit.

Reads run inline on the event loop (a point read takes microseconds); writes run
on one dedicated thread with their own connection, each in its own
``BEGIN IMMEDIATE`` transaction, so a write is acknowledged only after its
commit is on disk and never blocks the loop while it syncs.

Recently read secrets are kept in a small LRU cache of SEALED records (never
plaintext), invalidated by every write and delete once committed. This assumes
the embedded deployment: one vault process per database file.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from vaultmesh.services.vault.errors import StaleWrite
from vaultmesh.services.vault.lease import Lease, LocalLease
from vaultmesh.services.vault.records import Sealed, Secret, TermRecord, Version

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS terms (
    term INTEGER PRIMARY KEY, nonce BLOB NOT NULL, sealed_key BLOB NOT NULL,
    created TEXT NOT NULL, reserved INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS secrets (
    path TEXT PRIMARY KEY, rev INTEGER NOT NULL, created TEXT NOT NULL,
    updated TEXT NOT NULL, current INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    path TEXT NOT NULL, version INTEGER NOT NULL, term INTEGER NOT NULL,
    nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (path, version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS versions_by_term ON versions (term);
"""
_READ = (
    "SELECT s.rev, s.created, s.updated, s.current, v.version, v.term, v.nonce, v.ciphertext,"
    " v.created FROM secrets s JOIN versions v ON v.path = s.path WHERE s.path = ?"
    " ORDER BY v.version"
)
_UPSERT_VERSION = (
    "INSERT OR REPLACE INTO versions (path, version, term, nonce, ciphertext, created)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


# Bound of the sealed-record cache, in ciphertext bytes.
CACHE_BYTES = 16 * 1024 * 1024


def _size(secret: Secret) -> int:
    return sum(len(v.sealed.ciphertext) for v in secret.versions)


def _ts(when: datetime) -> str:
    return when.isoformat()


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 5000")
    con.execute("PRAGMA synchronous = FULL")
    return con


def _create_private(path: Path) -> None:
    """Create the database file 0600 (SQLite gives its -wal/-shm files the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class SqliteStore:
    """The SQLite implementation of ``Store``."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._cache: OrderedDict[str, Secret] = OrderedDict()
        self._cached_bytes = 0

    async def open(self) -> None:
        """Create the file and schema; open the read and write connections."""
        if self._reader is not None:
            return
        _create_private(self._path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vault-sqlite")
        self._writer = await self._in_thread(lambda: _connect(self._path))
        await self._in_thread(self._init_schema)
        self._reader = _connect(self._path)

    def _init_schema(self) -> None:
        assert self._writer is not None
        self._writer.execute("PRAGMA journal_mode = WAL")
        self._writer.executescript(_SCHEMA)

    async def close(self) -> None:
        """Close both connections and the writer thread; idempotent."""
        self._cache.clear()
        self._cached_bytes = 0
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if self._writer is not None:
            await self._in_thread(self._writer.close)
            self._writer = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    async def _in_thread(self, func: Callable[[], T]) -> T:
        assert self._thread is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._thread, func)

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        con = self._writer
        assert con is not None
        con.execute("BEGIN IMMEDIATE")
        try:
            result = body(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return result

    def rewrap_lease(self) -> Lease:
        """One process per database file: the rewrap is always this process's."""
        return LocalLease()

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._reader is not None, "store is not open"
        return self._reader

    # ---- key terms ---------------------------------------------------------------------

    async def load_terms(self) -> list[TermRecord]:
        """Every stored key term, oldest first."""
        rows = self._db.execute(
            "SELECT term, nonce, sealed_key, created FROM terms ORDER BY term"
        ).fetchall()
        return [TermRecord(t, n, k, datetime.fromisoformat(c)) for t, n, k, c in rows]

    async def has_term(self, term: int) -> bool:
        """Whether ``term`` is stored."""
        return (
            self._db.execute("SELECT 1 FROM terms WHERE term = ?", (term,)).fetchone() is not None
        )

    async def add_term(self, record: TermRecord) -> bool:
        """Store a new term; False when it exists."""

        def insert(con: sqlite3.Connection) -> bool:
            cursor = con.execute(
                "INSERT OR IGNORE INTO terms (term, nonce, sealed_key, created) VALUES (?,?,?,?)",
                (record.term, record.nonce, record.sealed_key, _ts(record.created)),
            )
            return cursor.rowcount == 1

        return await self._in_thread(lambda: self._transaction(insert))

    async def reseal_term(self, old: TermRecord, new: TermRecord) -> bool:
        """Replace ``old.term``'s sealed key by ``new``'s if it is still ``old``'s."""

        def update(con: sqlite3.Connection) -> bool:
            cursor = con.execute(
                "UPDATE terms SET nonce = ?, sealed_key = ? WHERE term = ? AND sealed_key = ?",
                (new.nonce, new.sealed_key, old.term, old.sealed_key),
            )
            return cursor.rowcount == 1

        return await self._in_thread(lambda: self._transaction(update))

    async def reserve(self, term: int, count: int) -> int:
        """Reserve ``count`` encryptions under ``term``; the new total."""

        def bump(con: sqlite3.Connection) -> int:
            row = con.execute(
                "UPDATE terms SET reserved = reserved + ? WHERE term = ? RETURNING reserved",
                (count, term),
            ).fetchone()
            return int(row[0]) if row else count

        return await self._in_thread(lambda: self._transaction(bump))

    # ---- secrets -----------------------------------------------------------------------

    def _forget(self, path: str) -> None:
        dropped = self._cache.pop(path, None)
        if dropped is not None:
            self._cached_bytes -= _size(dropped)

    def _remember(self, secret: Secret) -> None:
        self._cache[secret.path] = secret
        self._cached_bytes += _size(secret)
        while self._cached_bytes > CACHE_BYTES and self._cache:
            _path, oldest = self._cache.popitem(last=False)
            self._cached_bytes -= _size(oldest)

    async def read(self, path: str) -> Secret | None:
        """The secret at ``path``, or None."""
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        secret = self._select(path)
        if secret is not None:
            self._remember(secret)
        return secret

    def _select(self, path: str) -> Secret | None:
        rows = self._db.execute(_READ, (path,)).fetchall()
        if not rows:
            return None
        rev, created, updated, current = rows[0][:4]
        versions = tuple(
            Version(number, datetime.fromisoformat(vc), Sealed(term, nonce, ct))
            for *_meta, number, term, nonce, ct, vc in rows
        )
        return Secret(
            path,
            datetime.fromisoformat(created),
            datetime.fromisoformat(updated),
            current,
            versions,
            rev,
        )

    async def write(self, secret: Secret, changed: Collection[int]) -> int:
        """Store ``secret`` if its revision is unchanged; the new revision."""
        try:
            return await self._in_thread(
                lambda: self._transaction(lambda con: self._write(con, secret, changed))
            )
        finally:
            self._forget(secret.path)  # after the commit (or the failed attempt) only

    @staticmethod
    def _write(con: sqlite3.Connection, secret: Secret, changed: Collection[int]) -> int:
        if secret.rev == 0:
            try:
                con.execute(
                    "INSERT INTO secrets (path, rev, created, updated, current) VALUES (?,1,?,?,?)",
                    (secret.path, _ts(secret.created), _ts(secret.updated), secret.current),
                )
            except sqlite3.IntegrityError:
                raise StaleWrite from None
        else:
            cursor = con.execute(
                "UPDATE secrets SET rev = rev + 1, updated = ?, current = ?"
                " WHERE path = ? AND rev = ?",
                (_ts(secret.updated), secret.current, secret.path, secret.rev),
            )
            if cursor.rowcount != 1:
                raise StaleWrite
        oldest = min(version.number for version in secret.versions)
        con.execute("DELETE FROM versions WHERE path = ? AND version < ?", (secret.path, oldest))
        con.executemany(
            _UPSERT_VERSION,
            [
                (
                    secret.path,
                    v.number,
                    v.sealed.term,
                    v.sealed.nonce,
                    v.sealed.ciphertext,
                    _ts(v.created),
                )
                for v in secret.versions
                if v.number in changed
            ],
        )
        return secret.rev + 1

    async def remove(self, secret: Secret) -> None:
        """Delete ``secret`` if its revision is unchanged."""

        def delete(con: sqlite3.Connection) -> None:
            cursor = con.execute(
                "DELETE FROM secrets WHERE path = ? AND rev = ?", (secret.path, secret.rev)
            )
            if cursor.rowcount != 1:
                raise StaleWrite
            con.execute("DELETE FROM versions WHERE path = ?", (secret.path,))

        try:
            await self._in_thread(lambda: self._transaction(delete))
        finally:
            self._forget(secret.path)

    async def paths(self, prefix: str = "") -> list[str]:
        """Key paths starting with ``prefix``, sorted."""
        rows = self._db.execute(
            "SELECT path FROM secrets WHERE substr(path, 1, ?) = ? ORDER BY path",
            (len(prefix), prefix),
        ).fetchall()
        return [row[0] for row in rows]

    async def count(self) -> int:
        """How many secrets are stored."""
        return int(self._db.execute("SELECT count(*) FROM secrets").fetchone()[0])

    async def stale_paths(self, term: int) -> list[str]:
        """Paths with a version sealed under a term older than ``term``."""
        rows = self._db.execute(
            "SELECT DISTINCT path FROM versions WHERE term < ? ORDER BY path", (term,)
        ).fetchall()
        return [row[0] for row in rows]
