"""Logger benchmark: the logger's durable rate against a bare JetStream consumer.

One run, one nats-server, one preloaded AUDIT stream of N audit records:

- floor: a bare pull consumer (same batch size, AckPolicy.ALL, one ack per batch)
  that acknowledges without writing anything;
- value: the real logger component (``build_for``) from start until every
  entry is written, fsynced, in the Merkle tree and acknowledged.

Each is measured ``--rounds`` times (best kept, to damp a shared machine's noise).
The value includes storing every batch in the replicated log (stream LOGGER_LOG)
before the local write. Also reported: how fast a log is rehashed on start when its
tree files are lost (``rebuild_rate``), and how fast a logger on an empty volume
restores the log from LOGGER_LOG (``restore_rate``). The last line is one JSON object:
floor, value, ratio.

    .venv/bin/python benchmarks/logger.py [--quick] [--messages N] [--batch B]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from nats.aio.client import Client  # noqa: E402
from nats.js import JetStreamContext  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig  # noqa: E402
from nats.js.errors import NotFoundError  # noqa: E402

from vaultmesh.services.logger.auditlog import STATE_FILE, TREE_DIR, AuditLog  # noqa: E402
from vaultmesh.services.logger.config import LoggerSettings  # noqa: E402
from vaultmesh.services.logger.service import LoggerService, build_for  # noqa: E402
from vaultmesh.services.logger.signing import Signer, generate_key_file, load_signing_key  # noqa: E402
from vaultmesh.shared import bus, subjects  # noqa: E402
from vaultmesh.shared.clock import SystemClock  # noqa: E402
from vaultmesh.shared.config import BusSettings  # noqa: E402
from vaultmesh.shared.metrics import ServiceMetrics  # noqa: E402
from vaultmesh.shared.natsserver import NatsServer  # noqa: E402
from vaultmesh.shared.streams import StreamLimits, audit_config, ensure_stream  # noqa: E402


def record(i: int) -> bytes:
    """A realistic audit record (about 250 bytes)."""
    return orjson.dumps(
        {
            "ts": datetime.now(UTC).isoformat(),
            "service": "vault",
            "action": "get",
            "principal": f"agent-{i % 17}",
            "outcome": "allowed" if i % 5 else "denied",
            "severity": "info" if i % 5 else "warning",
            "node_id": f"00000000-0000-4000-8000-{i % 50:012d}",
            "key_hmac": "3f2a9c1b7e4d5a6f8091a2b3c4d5e6f7",
            "latency_ms": 0.42,
        }
    )


async def preload(js: JetStreamContext, count: int) -> None:
    """Publish ``count`` audit records with JetStream acks, 500 in flight at a time."""
    subject = subjects.audit("vault", "get")
    for start in range(0, count, 500):
        batch = range(start, min(count, start + 500))
        await asyncio.gather(*(js.publish(subject, record(i)) for i in batch))


async def floor_rate(js: JetStreamContext, count: int, batch: int, name: str) -> float:
    """Messages per second a bare pull consumer fetches and acknowledges."""
    config = ConsumerConfig(durable_name=name, ack_policy=AckPolicy.ALL, max_ack_pending=-1)
    await js.add_consumer(subjects.STREAM_AUDIT, config)
    sub = await js.pull_subscribe_bind(durable=name, stream=subjects.STREAM_AUDIT)
    seen, started = 0, time.perf_counter()
    while seen < count:
        msgs = await sub.fetch(batch, timeout=5)
        seen += len(msgs)
        await msgs[-1].ack()
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    return count / elapsed


async def logger_rate(nc: Client, work: Path, count: int, batch: int, key: Path) -> float:
    """Entries per second the logger makes durable (written, fsynced, hashed, acked)."""
    settings = LoggerSettings(
        data_dir=work,
        logger_signing_key_file=key,
        logger_batch_size=batch,
        logger_capture_events=False,
    )
    service = await build_for(settings, SystemClock())(nc, ServiceMetrics("logger"))
    assert isinstance(service, LoggerService)
    started = time.perf_counter()
    await service.start()
    # Polling costs the measured side a little; the logger has no "caught up" signal.
    while service.log.size < count:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    await service.stop()
    with contextlib.suppress(NotFoundError):  # the next round starts from the beginning
        await nc.jetstream().delete_consumer(subjects.STREAM_AUDIT, subjects.DURABLE_LOGGER)
    return count / elapsed


async def restore_rate(nc: Client, work: Path, count: int, key: Path) -> float:
    """Entries per second a logger on an empty volume takes back from its replicated log."""
    settings = LoggerSettings(data_dir=work, logger_signing_key_file=key)
    service = await build_for(settings, SystemClock())(nc, ServiceMetrics("logger"))
    assert isinstance(service, LoggerService)
    started = time.perf_counter()
    await service.start()  # levels the empty directory with LOGGER_LOG first
    elapsed = time.perf_counter() - started
    assert service.log.size == count, service.log.size
    await service.stop()
    return count / elapsed


async def forget_log(js: JetStreamContext) -> None:
    """Delete the replicated log, so the next round's logger starts a log of its own."""
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(subjects.STREAM_LOGGER_LOG)


def rebuild_rate(work: Path, key: Path) -> float:
    """Entries per second rehashed when a log is opened without its tree files."""
    shutil.rmtree(work / TREE_DIR)
    (work / STATE_FILE).unlink()
    (work / "PROOFCHAIN.json").unlink()
    started = time.perf_counter()
    log = AuditLog.open(
        work,
        signer=Signer(load_signing_key(key)),
        clock=SystemClock(),
        log_id="bench",
        segment_bytes=16 * 1024 * 1024,
    )
    elapsed = time.perf_counter() - started
    size = log.size
    log.close()
    return size / elapsed


async def run(count: int, batch: int, rounds: int) -> dict[str, float | int | str]:
    """Measure floor, value and rebuild rate in one nats-server."""
    tmp = Path(tempfile.mkdtemp(prefix="vm-bench-logger-"))
    try:
        with NatsServer(data_dir=tmp / "nats") as server:
            nc = await bus.connect(BusSettings(nats_url=server.url), "bench-logger")
            js = nc.jetstream()
            await ensure_stream(js, audit_config(StreamLimits()))
            await preload(js, count)
            key = tmp / "signing.key"
            generate_key_file(key)
            floors, values = [], []
            for n in range(rounds):
                await forget_log(js)
                floors.append(await floor_rate(js, count, batch, f"floor{n}"))
                values.append(await logger_rate(nc, tmp / f"log{n}", count, batch, key))
            restore = await restore_rate(nc, tmp / "restored", count, key)
            rebuild = rebuild_rate(tmp / "log0", key)
            await bus.close(nc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    floor, value = max(floors), max(values)
    return {
        "floor": round(floor),
        "value": round(value),
        "ratio": round(value / floor, 3),
        "unit": "entries/s",
        "messages": count,
        "batch": batch,
        "rebuild_rate": round(rebuild),
        "restore_rate": round(restore),
    }


def main() -> None:
    """Parse arguments, run, print the result as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, one round")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    count = args.messages or (5_000 if args.quick else 50_000)
    rounds = args.rounds or (1 if args.quick else 2)
    result = asyncio.run(run(count, args.batch, rounds))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
