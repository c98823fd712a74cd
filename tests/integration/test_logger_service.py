"""The logger against a real nats-server: capture, queries, proofs, bad input, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgpack
import orjson
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.local import local_env
from vaultmesh.services.logger.proofcheck import check_consistency, check_inclusion
from vaultmesh.services.logger.service import LoggerService, build_for
from vaultmesh.services.logger.signing import load_public_keys
from vaultmesh.services.logger.verify import verify_dir
from vaultmesh.shared import bus, codec, subjects
from vaultmesh.shared.clock import SystemClock
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.errors import BadRequest, NotFound
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.natsserver import NatsServer
from vaultmesh.shared.streams import StreamLimits, ensure_stream, events_config

N1, N2 = str(uuid4()), str(uuid4())


@pytest.fixture
async def fresh_streams(nc: Client) -> None:
    """Each test starts without AUDIT/EVENTS/LOGGER_LOG (the server lives for the module)."""
    js = nc.jetstream()
    for name in (subjects.STREAM_AUDIT, subjects.STREAM_EVENTS, subjects.STREAM_LOGGER_LOG):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)


@pytest.fixture
async def logger(
    fresh_streams: None, bus_settings: BusSettings, data_dir: Path
) -> AsyncIterator[tuple[LoggerService, ServiceMetrics]]:
    settings = LoggerSettings(
        nats_url=bus_settings.nats_url,
        data_dir=data_dir / "log",
        logger_signing_key_file=Path(local_env(data_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"]),
        logger_checkpoint_interval_s=3600,
        logger_fetch_wait_s=0.2,
    )
    conn = await bus.connect(bus_settings, "logger")
    metrics = ServiceMetrics("logger")
    service = await build_for(settings, SystemClock())(conn, metrics)
    await service.start()
    yield service, metrics
    await service.stop()
    await bus.close(conn)


async def wait_for_size(service: LoggerService, size: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while service.log.size < size:
        assert time.monotonic() < deadline, f"log has {service.log.size} of {size} entries"
        await asyncio.sleep(0.05)


async def ask(nc: Client, op: str, body: dict[str, Any] | None = None) -> Any:
    return await bus.request(nc, subjects.logs_api(op), body or {}, timeout=10)


async def publish(conn: Client, subject: str, body: dict[str, Any]) -> None:
    await conn.jetstream().publish(subject, orjson.dumps(body))


async def test_entries_from_several_services_land_in_order(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client, bus_settings: BusSettings
) -> None:
    service, _metrics = logger
    producers = {
        "vault": lambda i: subjects.audit("vault", "get" if i % 2 else "set"),
        "fleet": lambda i: subjects.event("attention", N1 if i % 2 else N2),
        "commander": lambda i: subjects.command(N1),
        "agent": lambda i: subjects.receipt(N2),
        "sched": lambda i: subjects.sched_fire("rotate"),
    }
    count = 40

    async def produce(name: str) -> None:
        conn = await bus.connect(bus_settings, name)
        for i in range(count):
            await publish(conn, producers[name](i), {"producer": name, "i": i})
        await bus.close(conn)

    await asyncio.gather(*(produce(name) for name in producers))
    total = count * len(producers)
    await wait_for_size(service, total)
    entries = (await ask(nc, "view", {"order": "oldest", "limit": 1000}))["entries"]
    assert [e["seq"] for e in entries] == list(range(total))
    for name in producers:
        mine = [e for e in entries if e["payload"]["producer"] == name]
        assert [e["payload"]["i"] for e in mine] == list(range(count)), name
    for stream in (subjects.STREAM_AUDIT, subjects.STREAM_EVENTS):
        seqs = [e["stream_seq"] for e in entries if e["stream"] == stream]
        assert seqs == list(range(1, len(seqs) + 1))
    stats = await ask(nc, "stats")
    assert stats["by_kind"] == {
        "audit": count,
        "attention": count,
        "command": count,
        "receipt": count,
        "schedule": count,
    }


async def test_filters_and_stats_count_right(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client
) -> None:
    service, _metrics = logger
    for _ in range(6):
        await publish(nc, subjects.audit("vault", "get"), {"node_id": N1, "severity": "warning"})
    for i in range(4):
        await publish(nc, subjects.audit("gateway", "login"), {"node_id": N2, "n": i})
    for _ in range(3):
        await publish(nc, subjects.event("incident", N1), {"severity": "critical", "body": "x"})
    await wait_for_size(service, 13)

    async def count(**body: Any) -> int:
        return len((await ask(nc, "view", {"limit": 1000, **body}))["entries"])

    assert await count() == 13
    assert await count(kind="audit") == 10
    assert await count(node=N1) == 9
    assert await count(min_severity="warning") == 9
    assert await count(min_severity="critical") == 3
    assert await count(subject="audit.gateway.>") == 4
    assert await count(kind="audit", node=N1, min_severity="error") == 0
    assert await count(since="-1h") == 13
    assert await count(until="-1h") == 0
    assert await count(since="2999-01-01T00:00:00Z") == 0
    newest = (await ask(nc, "view", {"limit": 2}))["entries"]
    assert [e["seq"] for e in newest] == [12, 11]
    oldest = (await ask(nc, "view", {"limit": 2, "order": "oldest", "after_seq": 4}))["entries"]
    assert [e["seq"] for e in oldest] == [5, 6]
    stats = await ask(nc, "stats", {"since": "-1h"})
    assert stats["total"] == 13
    assert stats["by_node"] == {N1: 9, N2: 4}
    assert stats["by_kind"] == {"audit": 10, "incident": 3}
    assert stats["by_severity"] == {"warning": 6, "info": 4, "critical": 3}
    assert (await ask(nc, "stats", {"kind": "incident"}))["total"] == 3
    _service, metrics = logger
    for stream, written in ((subjects.STREAM_AUDIT, 10), (subjects.STREAM_EVENTS, 3)):
        sample = metrics.registry.get_sample_value(
            "vaultmesh_logger_entries_total", {"service": "logger", "stream": stream}
        )
        assert sample == written


@pytest.mark.parametrize(
    ("op", "body", "message"),
    [
        ("view", b'{"since": "last week"}', "since"),
        ("view", b'{"until": "2026-01-01T10:00:00"}', "time zone"),
        ("view", b'{"limit": -5}', "limit"),
        ("view", b'{"min_severity": "loud"}', "min_severity"),
        ("view", b'{"limit": ', "malformed JSON"),
        ("stats", b'{"since": "1 hour"}', "since"),
        ("proof", b'{"seq": 99}', "not in the log"),
        ("proof", b'{"seq": 0, "tree_size": 5}', "beyond the log"),
        ("proof", b'{"type": "consistency"}', "first"),
        ("checkpoint", b'{"tree_size": -1}', "tree_size"),
    ],
)
async def test_bad_query_input_is_a_clear_error(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client, op: str, body: bytes, message: str
) -> None:
    service, metrics = logger
    await publish(nc, subjects.audit("vault", "get"), {"n": 1})
    await wait_for_size(service, 1)
    reply = codec.decode((await nc.request(subjects.logs_api(op), body, timeout=10)).data)
    assert reply["status"] == "error"
    assert reply["code"] == "bad_request"
    assert message in reply["message"]
    bad = metrics.registry.get_sample_value(
        "vaultmesh_bad_input_total", {"service": "logger", "source": op, "code": "bad_request"}
    )
    assert bad == 1
    assert (await ask(nc, "view"))["size"] == 1  # still serving, data intact


async def test_msgpack_queries_get_msgpack_replies(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client
) -> None:
    service, _metrics = logger
    await publish(nc, subjects.audit("vault", "get"), {"n": 1})
    await wait_for_size(service, 1)
    msg = await nc.request(
        subjects.logs_api("view"),
        msgpack.packb({"limit": 1}),
        headers={codec.CONTENT_TYPE: codec.MSGPACK_TYPE},
        timeout=10,
    )
    reply = msgpack.unpackb(msg.data)
    assert reply["data"]["entries"][0]["payload"] == {"n": 1}


async def test_proofs_over_the_bus_verify_offline(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client, data_dir: Path
) -> None:
    service, _metrics = logger
    with pytest.raises(NotFound, match="no checkpoint yet"):
        await ask(nc, "checkpoint")
    for i in range(5):
        await publish(nc, subjects.audit("vault", "get"), {"n": i})
    await wait_for_size(service, 5)
    first = await ask(nc, "checkpoint", {"create": True})
    assert first["checkpoint"]["tree_size"] == 5
    for i in range(5, 12):
        await publish(nc, subjects.event("note", N1), {"n": i})
    await wait_for_size(service, 12)
    second = await ask(nc, "checkpoint", {"create": True})
    assert second["checkpoint"]["tree_size"] == 12
    assert second["checkpoint"]["prev"] != "-"
    keys = load_public_keys(data_dir / "log" / "checkpoint.pub")
    assert (
        second["public_key"].encode().strip() in (data_dir / "log" / "checkpoint.pub").read_bytes()
    )

    inclusion = await ask(nc, "proof", {"seq": 7})
    assert inclusion["tree_size"] == 12
    assert check_inclusion(inclusion, keys) == []
    assert check_inclusion({**inclusion, "entry": inclusion["entry"].replace("7", "8")}, keys)
    assert check_inclusion({**inclusion, "path": inclusion["path"][::-1]}, keys)

    consistency = await ask(nc, "proof", {"type": "consistency", "first": 5})
    assert (consistency["first"], consistency["second"]) == (5, 12)
    assert consistency["first_checkpoint"] == first["checkpoint"]
    assert check_consistency(consistency, keys) == []
    tampered = {**consistency, "path": [*consistency["path"][:-1], "00" * 32]}
    assert check_consistency(tampered, keys)
    assert (await ask(nc, "checkpoint", {"tree_size": 5}))["checkpoint"] == first["checkpoint"]
    with pytest.raises(NotFound):
        await ask(nc, "checkpoint", {"tree_size": 6})
    with pytest.raises(BadRequest, match="smaller"):
        await ask(nc, "proof", {"seq": 7, "tree_size": 5})


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vaultmesh.cli.main",
        "logs",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_view_stats_proof_and_verify(
    logger: tuple[LoggerService, ServiceMetrics],
    nc: Client,
    nats_server: NatsServer,
    data_dir: Path,
) -> None:
    service, _metrics = logger
    for i in range(6):
        await publish(nc, subjects.audit("vault", "get"), {"node_id": N1, "n": i})
    await publish(nc, subjects.event("incident", N2), {"severity": "critical", "body": "disk"})
    await wait_for_size(service, 7)
    await ask(nc, "checkpoint", {"create": True})
    url = ("--nats-url", nats_server.url)

    # The two streams are read side by side, so look up where the audits landed.
    entries = (await ask(nc, "view", {"order": "oldest"}))["entries"]
    audits = [e["seq"] for e in entries if e["kind"] == "audit"]
    code, out, _err = await run_cli("view", *url, "--json", "--kind", "audit", "--limit", "4")
    assert code == 0
    assert [orjson.loads(line)["seq"] for line in out.splitlines()] == audits[::-1][:4]

    code, out, _err = await run_cli("view", *url, "--since", "-1h", "--min-severity", "error")
    assert code == 0
    assert len(out.splitlines()) == 1
    assert "incident" in out
    assert "disk" in out

    code, out, _err = await run_cli("tail", *url, "-n", "2", "--json")
    assert [orjson.loads(line)["seq"] for line in out.splitlines()] == [5, 6]
    assert code == 0

    code, out, _err = await run_cli("stats", *url, "--json", "--node", N1)
    assert orjson.loads(out)["total"] == 6

    code, out, _err = await run_cli("view", *url, "--since", "soon")
    assert code == 1
    assert "since" in _err

    pub = str(data_dir / "log" / "checkpoint.pub")
    code, out, _err = await run_cli("proof", *url, "--seq", "3", "--pub", pub, "--json")
    assert code == 0, out
    assert orjson.loads(out)["ok"] is True

    code, out, _err = await run_cli("verify", "--dir", str(data_dir / "log"))
    assert code == 0, out
    assert out.startswith("OK: 7 entries")


async def test_tail_follow_prints_new_entries(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client, nats_server: NatsServer
) -> None:
    service, _metrics = logger
    await publish(nc, subjects.audit("vault", "get"), {"n": "before"})
    await wait_for_size(service, 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vaultmesh.cli.main",
        "logs",
        "tail",
        "-f",
        "--json",
        "--interval",
        "0.2",
        "--kind",
        "note",
        "--nats-url",
        nats_server.url,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        await asyncio.sleep(0)  # the follower may start before or after these land
        for i in range(3):
            await publish(nc, subjects.event("note", N1), {"body": f"live {i}"})
            await publish(nc, subjects.audit("vault", "get"), {"n": i})
        assert proc.stdout is not None
        seen = []
        for _ in range(3):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            seen.append(orjson.loads(line)["payload"]["body"])
        assert seen == ["live 0", "live 1", "live 2"]
    finally:
        proc.terminate()
        await proc.wait()


async def one_note(logger: tuple[LoggerService, ServiceMetrics], nc: Client) -> LoggerService:
    """The logger once it holds one note."""
    service, _metrics = logger
    await publish(nc, subjects.event("note", N1), {"body": "first"})
    await wait_for_size(service, 1)
    return service


async def long_poll(nc: Client, body: dict[str, Any]) -> asyncio.Task[Any]:
    """A ``logs.view`` long poll left waiting. Its request times out long before the
    poll's own wait: only a written entry (or the logger stopping) answers it in time."""
    waiting = asyncio.create_task(bus.request(nc, subjects.logs_api("view"), body, timeout=15))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    return waiting


async def test_a_long_poll_answers_when_a_matching_entry_is_written(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client
) -> None:
    service = await one_note(logger, nc)
    waiting = await long_poll(nc, {"kind": "note", "order": "oldest", "after_seq": 0, "wait_s": 30})
    await publish(nc, subjects.audit("vault", "get"), {"n": "not a note"})  # no match: keep waiting
    await wait_for_size(service, 2)
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await publish(nc, subjects.event("note", N1), {"body": "new"})
    reply = await waiting
    assert [entry["payload"]["body"] for entry in reply["entries"]] == ["new"]
    assert reply["size"] == 3


async def test_a_long_poll_with_nothing_new_answers_empty_after_its_wait(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client
) -> None:
    await one_note(logger, nc)
    reply = await ask(nc, "view", {"after_seq": 0, "wait_s": 0.5})
    assert reply == {"entries": [], "size": 1}
    # Without a cursor there is nothing to wait for: the answer is immediate.
    assert len((await ask(nc, "view", {"wait_s": 30}))["entries"]) == 1


async def test_stopping_the_logger_answers_long_polls_at_once(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client
) -> None:
    service, _metrics = logger
    waiting = await long_poll(nc, {"after_seq": -1, "wait_s": 30})
    await service.stop()
    assert (await waiting)["entries"] == []


async def test_a_recreated_stream_is_noted_and_read_from_its_start(
    logger: tuple[LoggerService, ServiceMetrics], nc: Client, data_dir: Path
) -> None:
    service, _metrics = logger
    for i in range(3):
        await publish(nc, subjects.event("note", N1), {"body": f"old {i}"})
    await wait_for_size(service, 3)
    js = nc.jetstream()
    await js.delete_stream(subjects.STREAM_EVENTS)
    await ensure_stream(js, events_config(StreamLimits()))  # as fleet-state would
    for i in range(5):  # more than before: the sequence alone would not tell
        await publish(nc, subjects.event("note", N1), {"body": f"new {i}"})
    await wait_for_size(service, 3 + 1 + 5)
    entries = (await ask(nc, "view", {"order": "oldest"}))["entries"]
    assert entries[3]["subject"] == subjects.LOGGER_STREAM_RESET
    assert entries[3]["payload"]["previous_stream_seq"] == 3
    assert [e["payload"]["body"] for e in entries[4:]] == [f"new {i}" for i in range(5)]
    assert [e["stream_seq"] for e in entries[4:]] == [1, 2, 3, 4, 5]
    report = verify_dir(data_dir / "log")
    assert report.ok, report.problems
