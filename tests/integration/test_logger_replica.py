"""The log survives losing the logger's volume: a new logger continues it from JetStream.

Real nats-server, real logger components. The log directory is deleted (or replaced
by an old copy) between two loggers; the second must hold the same entries and the
same signed checkpoints, pass ``verify``, and go on appending. Two loggers at once
never both write: the one whose view is stale is refused and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import orjson
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.checkpoint import CHAIN_FILE, ROOT_FILE
from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.entry import Incoming
from vaultmesh.services.logger.local import local_env
from vaultmesh.services.logger.segments import list_segments
from vaultmesh.services.logger.service import LoggerService, build_for
from vaultmesh.services.logger.trusted import load_trusted
from vaultmesh.services.logger.verify import verify_dir
from vaultmesh.shared import bus, codec, subjects
from vaultmesh.shared.clock import SystemClock
from vaultmesh.shared.config import BusSettings, ConfigError
from vaultmesh.shared.metrics import ServiceMetrics

SUBJECT = subjects.audit("vault", "get")


@pytest.fixture
async def fresh_streams(nc: Client) -> None:
    """No AUDIT, EVENTS or LOGGER_LOG yet (the server lives for the whole module)."""
    js = nc.jetstream()
    for name in (subjects.STREAM_AUDIT, subjects.STREAM_EVENTS, subjects.STREAM_LOGGER_LOG):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)


def settings_for(bus_settings: BusSettings, data_dir: Path, log_dir: Path) -> LoggerSettings:
    return LoggerSettings(
        nats_url=bus_settings.nats_url,
        data_dir=log_dir,
        # One key for every logger of a test: the same log, signed by its one key.
        logger_signing_key_file=Path(local_env(data_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"]),
        logger_checkpoint_interval_s=3600,
        logger_fetch_wait_s=0.2,
        logger_capture_events=False,
    )


@contextlib.asynccontextmanager
async def running(
    bus_settings: BusSettings, data_dir: Path, log_dir: Path, *, stop: bool = True
) -> AsyncIterator[tuple[LoggerService, ServiceMetrics]]:
    """A logger on ``log_dir``; with ``stop=False`` it is abandoned as a lost machine would."""
    conn = await bus.connect(bus_settings, "logger")
    metrics = ServiceMetrics("logger")
    service = await build_for(settings_for(bus_settings, data_dir, log_dir), SystemClock())(
        conn, metrics
    )
    assert isinstance(service, LoggerService)
    try:
        await service.start()
    except BaseException:
        await service.stop()
        await bus.close(conn)
        raise
    try:
        yield service, metrics
    finally:
        if stop:
            await service.stop()
        else:  # no last checkpoint, no drain: the connection just goes away
            service._capture.release_waiters()
            await conn.close()
            service.log.close()
        await bus.close(conn)


async def wait_for(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def publish(nc: Client, first: int, last: int) -> None:
    js = nc.jetstream()
    for n in range(first, last + 1):
        await js.publish(SUBJECT, orjson.dumps({"n": n}))


def lines(log_dir: Path) -> list[bytes]:
    found: list[bytes] = []
    for _first, path in list_segments(log_dir / "segments"):
        found += path.read_bytes().splitlines()
    return found


def numbers(log_dir: Path) -> list[int]:
    return [int(orjson.loads(line)["payload"]["n"]) for line in lines(log_dir)]


async def test_a_new_logger_on_an_empty_volume_continues_the_same_log(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path
) -> None:
    log_dir = data_dir / "log"
    async with running(bus_settings, data_dir, log_dir) as (first, _metrics):
        await publish(nc, 1, 30)
        await wait_for(lambda: first.log.size == 30, "30 entries")
        await first._capture.checkpoint()
        await publish(nc, 31, 35)  # an unsigned tail: written, acknowledged, not yet signed
        await wait_for(lambda: first.log.size == 35, "35 entries")
    before = verify_dir(log_dir)
    assert before.ok, before.problems
    entries, chain, root = lines(log_dir), (log_dir / CHAIN_FILE).read_bytes(), before.signed_root
    shutil.rmtree(log_dir)  # the machine and its volume are gone

    async with running(bus_settings, data_dir, log_dir) as (second, metrics):
        assert second.log.size == 35
        assert lines(log_dir) == entries
        assert (log_dir / CHAIN_FILE).read_bytes() == chain
        restored = verify_dir(log_dir)
        assert restored.ok, restored.problems
        assert (restored.signed_size, restored.signed_root) == (35, root)
        adopted = metrics.registry.get_sample_value(
            "vaultmesh_logger_adopted_entries_total", {"service": "logger"}
        )
        assert adopted == 35
        await publish(nc, 36, 40)
        await wait_for(lambda: second.log.size == 40, "40 entries")
    assert numbers(log_dir) == list(range(1, 41))  # nothing lost, nothing doubled
    after = verify_dir(log_dir, trusted=load_trusted(f"35:{root}"))  # the old signed log, extended
    assert after.ok, after.problems
    assert after.signed_size == 40


async def test_a_lost_machine_without_a_last_checkpoint_loses_nothing(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    log_dir = data_dir / "log"
    async with running(bus_settings, data_dir, log_dir, stop=False) as (first, _metrics):
        await publish(nc, 1, 12)
        await wait_for(lambda: first.log.size == 12, "12 entries")
        await first._capture.checkpoint()
        await publish(nc, 13, 20)
        await wait_for(lambda: first.log.size == 20, "20 entries")
    entries = lines(log_dir)
    other = tmp_path / "elsewhere"  # another node: its own, empty volume
    async with running(bus_settings, data_dir, other) as (second, _metrics):
        assert lines(other) == entries
        await publish(nc, 21, 25)
        await wait_for(lambda: second.log.size == 25, "25 entries")
    assert numbers(other) == list(range(1, 26))
    report = verify_dir(other)
    assert report.ok, report.problems


async def test_an_old_copy_of_the_volume_catches_up(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    log_dir, copy = data_dir / "log", tmp_path / "backup"
    async with running(bus_settings, data_dir, log_dir) as (logger, _metrics):
        await publish(nc, 1, 20)
        await wait_for(lambda: logger.log.size == 20, "20 entries")
        await logger._capture.checkpoint()
        shutil.copytree(log_dir, copy)  # last night's backup
        for first in range(21, 60, 13):  # several batches and checkpoints after it
            last = first + 12
            await publish(nc, first, last)
            await wait_for(lambda: logger.log.size == last, "a batch")  # noqa: B023
            await logger._capture.checkpoint()
    async with running(bus_settings, data_dir, copy) as (restored, _metrics):
        assert restored.log.size == 59
    assert lines(copy) == lines(log_dir)
    assert (copy / ROOT_FILE).read_bytes() == (log_dir / ROOT_FILE).read_bytes()
    report = verify_dir(copy)
    assert report.ok, report.problems


async def test_a_long_entry_split_over_messages_comes_back_whole(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    log_dir = data_dir / "log"
    # Control characters: each becomes six bytes of JSON, so the line outgrows a message.
    body = msgpack.packb({"n": 2, "blob": "\x01" * 200_000})
    async with running(bus_settings, data_dir, log_dir) as (logger, _metrics):
        await publish(nc, 1, 1)
        await nc.jetstream().publish(
            SUBJECT, body, headers={codec.CONTENT_TYPE: codec.MSGPACK_TYPE}
        )
        await publish(nc, 3, 4)
        await wait_for(lambda: logger.log.size == 4, "4 entries")
    assert max(len(line) for line in lines(log_dir)) > 1024 * 1024
    async with running(bus_settings, data_dir, tmp_path / "new") as (_restored, _metrics):
        assert lines(tmp_path / "new") == lines(log_dir)
    report = verify_dir(tmp_path / "new")
    assert report.ok, report.problems


async def test_a_second_concurrent_writer_is_refused(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    async with running(bus_settings, data_dir, data_dir / "log") as (old, old_metrics):
        await publish(nc, 1, 10)
        await wait_for(lambda: old.log.size == 10, "10 entries")
        # A new task starts elsewhere while the old one still runs (a partitioned node that
        # comes back, or an operator's mistake): it continues the log and claims it.
        async with running(bus_settings, data_dir, tmp_path / "new") as (new, _metrics):
            assert new.log.size == 10
            n = 10
            while not old.fenced:  # both pull from one consumer: the old one gets some
                n += 1
                await publish(nc, n, n)
                assert n < 500, "the old writer was never refused"
                await asyncio.sleep(0.02)
            old_size = old.log.size
            # What the old one held is given back; the consumer's ack wait (60 s) backs that up.
            await wait_for(lambda: new.log.size == n, f"{n} entries in the new log", 90)
            await publish(nc, n + 1, n + 5)
            await wait_for(lambda: new.log.size == n + 5, "5 more")
            assert old.log.size == old_size  # refused: it wrote nothing after the claim
            assert old_size == 10
            fenced = old_metrics.registry.get_sample_value(
                "vaultmesh_logger_fenced", {"service": "logger"}
            )
            assert fenced == 1
    assert numbers(tmp_path / "new") == list(range(1, n + 6))
    report = verify_dir(tmp_path / "new")
    assert report.ok, report.problems


async def test_a_local_log_that_differs_from_the_replica_is_refused(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    async with running(bus_settings, data_dir, data_dir / "log") as (logger, _metrics):
        await publish(nc, 1, 5)
        await wait_for(lambda: logger.log.size == 5, "5 entries")
    # Another log's directory (same key, other entries) put where this one was.
    stranger = local_log(tmp_path / "stranger", logger)
    stranger.commit([Incoming(subjects.STREAM_AUDIT, 1, SUBJECT, b'{"n": 99}')])
    stranger.checkpoint()
    stranger.close()
    with pytest.raises(ConfigError, match="differ"):
        async with running(bus_settings, data_dir, tmp_path / "stranger"):
            pass


def local_log(directory: Path, key_from: LoggerService) -> AuditLog:
    return AuditLog.open(
        directory,
        signer=key_from.log._signer,
        clock=SystemClock(),
        log_id="vaultmesh-audit",
        segment_bytes=1 << 20,
    )


async def test_a_log_from_before_the_replica_moves_into_it(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    async with running(bus_settings, data_dir, tmp_path / "scratch") as (scratch, _metrics):
        pass  # only for its signing key
    js = nc.jetstream()
    await js.delete_stream(subjects.STREAM_LOGGER_LOG)  # as before the replica existed
    old = local_log(data_dir / "log", scratch)
    old.commit([Incoming(subjects.STREAM_AUDIT, n, SUBJECT, b'{"n": %d}' % n) for n in (1, 2, 3)])
    old.checkpoint()
    old.commit([Incoming(subjects.STREAM_AUDIT, 4, SUBJECT, b'{"n": 4}')])
    old.close()
    async with running(bus_settings, data_dir, data_dir / "log") as (_upgraded, _metrics):
        pass  # (AUDIT is new here, so it also notes the stream's reset: entry 4)
    entries = lines(data_dir / "log")
    assert len(entries) == 5
    shutil.rmtree(data_dir / "log")
    async with running(bus_settings, data_dir, data_dir / "log") as (restored, _metrics):
        assert restored.log.size == 5
    assert lines(data_dir / "log") == entries
    report = verify_dir(data_dir / "log")
    assert report.ok, report.problems


async def test_entries_added_to_the_directory_behind_the_loggers_back_are_refused(
    fresh_streams: None, bus_settings: BusSettings, nc: Client, data_dir: Path
) -> None:
    async with running(bus_settings, data_dir, data_dir / "log") as (logger, _metrics):
        await publish(nc, 1, 3)
        await wait_for(lambda: logger.log.size == 3, "3 entries")
    forged = local_log(data_dir / "log", logger)
    forged.commit([Incoming(subjects.STREAM_AUDIT, 4, SUBJECT, b'{"n": 4, "forged": true}')])
    forged.close()
    with pytest.raises(ConfigError, match="lacks"):
        async with running(bus_settings, data_dir, data_dir / "log"):
            pass
