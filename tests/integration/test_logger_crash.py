"""The logger as a real process: SIGKILL while writing, restart, nothing lost or doubled.

Also: one byte changed in a segment of a copy of the log, and ``vaultmesh logs
verify --dir`` names the entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from vaultmesh.services.logger.local import local_env
from vaultmesh.services.logger.segments import list_segments
from vaultmesh.services.logger.verify import verify_dir
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.natsserver import NatsServer
from vaultmesh.shared.streams import StreamLimits, audit_config, ensure_stream, events_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fresh_streams(nc: Client) -> None:
    """Empty AUDIT and EVENTS streams, so publishing works before the logger runs."""
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):  # and a log of its own (the replica)
        await js.delete_stream(subjects.STREAM_LOGGER_LOG)
    for config in (audit_config(StreamLimits()), events_config(StreamLimits())):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(str(config.name))
        await ensure_stream(js, config)


def start_logger(server: NatsServer, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **local_env(data_dir),
        "VAULTMESH_NATS_URL": server.url,
        "VAULTMESH_DATA_DIR": str(data_dir / "log"),
        "VAULTMESH_LOGGER_CHECKPOINT_INTERVAL_S": "0.5",
        "VAULTMESH_LOGGER_BATCH_SIZE": "500",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "vaultmesh.services.logger"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def lines_on_disk(log_dir: Path) -> list[bytes]:
    found: list[bytes] = []
    for _first, path in list_segments(log_dir / "segments"):
        found += path.read_bytes().splitlines()
    return found


async def wait_until(condition: object, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def logged_size(nc: Client) -> int:
    try:
        reply = await bus.request(nc, subjects.logs_api("view"), {"limit": 1}, timeout=5)
    except Unavailable:
        return -1
    return int(reply["size"])


async def publish_backlog(nc: Client, audits: int, events: int) -> None:
    js = nc.jetstream()
    audit_subject, event_subject = subjects.audit("vault", "get"), subjects.event("note")
    for start in range(0, max(audits, events), 250):
        sends = [
            js.publish(audit_subject, orjson.dumps({"n": i}))
            for i in range(start, min(audits, start + 250))
        ] + [
            js.publish(event_subject, orjson.dumps({"n": i}))
            for i in range(start, min(events, start + 250))
        ]
        await asyncio.gather(*sends)


def audit_high_water(log_dir: Path) -> int:
    """The highest AUDIT stream sequence written to the segments (0: none)."""
    for line in reversed(lines_on_disk(log_dir)):
        if b'"stream":"AUDIT"' in line:
            return int(orjson.loads(line)["stream_seq"])
    return 0


async def ack_floor(nc: Client) -> int:
    """The AUDIT stream sequence up to which the logger's consumer has acknowledged."""
    try:
        info = await nc.jetstream().consumer_info(subjects.STREAM_AUDIT, subjects.DURABLE_LOGGER)
    except NotFoundError:
        return -1
    return int(info.ack_floor.stream_seq)


async def kill_mid_batch(proc: subprocess.Popen[bytes], nc: Client, log_dir: Path) -> bool:
    """SIGKILL the logger; try to catch it with a batch written and fsynced but not acked.

    The process is frozen (SIGSTOP) at staggered moments and inspected: if the
    segments hold AUDIT messages its consumer has not acknowledged, it is killed
    right there. Returns whether the kill landed in that window.
    """
    for attempt in range(300):
        await asyncio.sleep(0.002 * (attempt % 5))
        proc.send_signal(signal.SIGSTOP)
        written = audit_high_water(log_dir) if log_dir.exists() else 0
        if written > await ack_floor(nc) >= 0:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            await asyncio.sleep(0.2)  # an ack already on the wire would land by now
            return written > await ack_floor(nc)
        proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return False


@pytest.mark.slow
async def test_sigkill_mid_batch_loses_and_doubles_nothing(
    fresh_streams: None, nats_server: NatsServer, nc: Client, data_dir: Path
) -> None:
    audits, events = 9000, 3000
    total = audits + events
    log_dir = data_dir / "log"
    publisher = asyncio.create_task(publish_backlog(nc, audits, events))
    proc = start_logger(nats_server, data_dir)
    mid_batch_kills, kills = 0, 0
    try:
        while kills < 3 or (mid_batch_kills == 0 and kills < 8):
            mid_batch_kills += await kill_mid_batch(proc, nc, log_dir)
            kills += 1
            proc = start_logger(nats_server, data_dir)
        await publisher
        deadline = time.monotonic() + 90
        while await logged_size(nc) != total:
            assert time.monotonic() < deadline, "the restarted logger did not catch up"
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    assert mid_batch_kills > 0, "no kill landed between fsync and ack"
    entries = [orjson.loads(line) for line in lines_on_disk(log_dir)]
    assert [e["seq"] for e in entries] == list(range(total))
    keys = [(e["stream"], e["stream_seq"]) for e in entries]
    assert len(set(keys)) == total  # nothing doubled
    assert set(keys) == {("AUDIT", n) for n in range(1, audits + 1)} | {
        ("EVENTS", n) for n in range(1, events + 1)
    }  # nothing lost
    report = verify_dir(log_dir)
    assert report.ok, report.problems
    assert report.signed_size == total  # the SIGTERM path signs a last checkpoint


@pytest.mark.slow
async def test_verify_names_the_entry_with_a_changed_byte(
    fresh_streams: None, nats_server: NatsServer, nc: Client, data_dir: Path, tmp_path: Path
) -> None:
    js = nc.jetstream()
    for i in range(40):
        await js.publish(subjects.audit("vault", "get"), orjson.dumps({"n": i, "who": "alice"}))
    proc = start_logger(nats_server, data_dir)
    try:
        await wait_until(
            lambda: (data_dir / "log").exists() and len(lines_on_disk(data_dir / "log")) == 40,
            "40 entries",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    copy = tmp_path / "copy"
    shutil.copytree(data_dir / "log", copy)
    (_first, segment) = list_segments(copy / "segments")[0]
    data = bytearray(segment.read_bytes())
    at = data.index(b'"n":23,"who":"alice"') + len(b'"n":23,"who":"a')
    data[at] = ord("A")  # alice -> aAice: one byte
    segment.write_bytes(bytes(data))

    result = subprocess.run(
        [sys.executable, "-m", "vaultmesh.cli.main", "logs", "verify", "--dir", str(copy)],
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    out = result.stdout.decode()
    assert result.returncode == 1, out
    assert "entry 23 was changed after it was signed" in out
    assert "first bad entry: 23" in out
    assert verify_dir(data_dir / "log").ok  # the original is untouched
