"""Gateway benchmark: heartbeat ingest throughput against a bare-ASGI floor, and SSE latency.

In one run, against a nats-server of its own, in rounds that measure the floor
and then the gateway back to back (the ratio is the median of the rounds'):

* floor: requests/s of a bare ASGI app answering 200 (uvicorn, loopback);
* value: requests/s of ``POST /api/agent/heartbeat`` through the real gateway
  (``python -m vaultmesh.services.gateway``) to the HEARTBEATS stream, each
  answered only after the JetStream ack — same client, same concurrency;
* heartbeat-to-SSE latency: time from sending a heartbeat to receiving its
  ``event: heartbeat`` on ``GET /events`` (one at a time, p50/p99).

Both servers run in their own processes (uvloop + httptools, no access log);
the client is a minimal keep-alive HTTP/1.1 client over asyncio streams. The
last line printed is one JSON object: floor, value, ratio, sse_p50_ms, sse_p99_ms.

    .venv/bin/python benchmarks/gateway.py [--quick] [--unique-heads]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from vaultmesh.shared.natsserver import NatsServer, free_port  # noqa: E402

HOST = "127.0.0.1"
AGENT_TOKEN = "bench-agent-token-0123456789abcdef"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
OK = b'{"status":"ok"}'


# ---- the floor: a bare ASGI app -------------------------------------------------------
async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, answer 200 with the seed 000 reply."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(OK)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": OK})


def serve_floor(port: int) -> None:
    """Run the bare app the way the gateway is run (uvicorn, uvloop, httptools)."""
    import uvicorn

    uvicorn.run(
        bare_app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


# ---- a minimal keep-alive HTTP/1.1 client ---------------------------------------------
def post_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one POST request."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _worker(port: int, make: Callable[[], bytes], until: float, tally: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    loop = asyncio.get_running_loop()
    try:
        while loop.time() < until:
            writer.write(make())
            status, _ = await read_response(reader)
            tally[0 if status == 200 else 1] += 1
    finally:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Load:
    """One measured load: throughput and the server's CPU per request."""

    rps: float
    cpu_us: float


async def measure_rps(
    port: int, make: Callable[[], bytes], seconds: float, conns: int, pid: int
) -> Load:
    """Successful requests per second over ``conns`` keep-alive connections."""
    warm_until = asyncio.get_running_loop().time() + min(1.0, seconds / 4)
    await asyncio.gather(*(_worker(port, make, warm_until, [0, 0]) for _ in range(conns)))
    tally = [0, 0]
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    until = asyncio.get_running_loop().time() + seconds
    await asyncio.gather(*(_worker(port, make, until, tally) for _ in range(conns)))
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    if tally[1]:
        print(f"  {tally[1]} requests failed", file=sys.stderr)
    return Load(tally[0] / elapsed, cpu / max(tally[0], 1) * 1e6)


# ---- the gateway ----------------------------------------------------------------------
def heartbeat_body(node: uuid.UUID, hostname: str) -> bytes:
    """A seed 000 heartbeat."""
    return orjson.dumps(
        {
            "node_id": str(node),
            "hostname": hostname,
            "os_profile": "ArchVault",
            "cloudflare_ok": True,
            "services_ok": True,
            "vaultmesh_root": "/var/lib/vaultmesh",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    )


def heartbeat_maker(unique_heads: bool = False) -> Callable[[], bytes]:
    """Fresh heartbeat requests from a pool of 32 nodes; with ``unique_heads`` each
    request also carries an ``X-Seq`` header of its own, so no two heads are equal."""
    nodes = [uuid.uuid4() for _ in range(32)]
    counter = iter(range(10**12))
    headers = {"Content-Type": "application/json", "X-Host-Token": AGENT_TOKEN}

    def make() -> bytes:
        n = next(counter)
        body = heartbeat_body(nodes[n % len(nodes)], f"bench-{n % 97}")
        extra = {"X-Seq": str(n)} if unique_heads else {}
        return post_request("/api/agent/heartbeat", body, headers | extra)

    return make


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, terminated (SIGTERM, then kill) afterwards."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_http(port: int, path: str = "/", timeout: float = 60.0) -> None:
    """Until something answers HTTP on ``port`` (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            await read_response(reader)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


# ---- heartbeat -> SSE latency -------------------------------------------------------------
async def _sse_lines(port: int, node: uuid.UUID) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection(HOST, port)
    request = (
        f"GET /events?kind=heartbeat&node_id={node} HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"SSE refused: {head!r}")
    return reader, writer


async def _next_hostname(reader: asyncio.StreamReader) -> str:
    # Chunked transfer: scan lines for the data of a heartbeat event.
    while True:
        line = await reader.readline()
        if line.startswith(b"data: "):
            hostname: str = orjson.loads(line[6:])["hostname"]
            return hostname


async def measure_sse(port: int, samples: int) -> list[float]:
    """Milliseconds from sending a heartbeat to its SSE event, one at a time."""
    node = uuid.uuid4()
    sse_reader, sse_writer = await _sse_lines(port, node)
    reader, writer = await asyncio.open_connection(HOST, port)
    headers = {"Content-Type": "application/json", "X-Host-Token": AGENT_TOKEN}
    latencies = []
    try:
        for n in range(samples):
            name = f"lat-{n}"
            started = time.perf_counter()
            writer.write(post_request("/api/agent/heartbeat", heartbeat_body(node, name), headers))
            status, _ = await read_response(reader)
            assert status == 200, status
            while await asyncio.wait_for(_next_hostname(sse_reader), 10) != name:
                pass
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
    finally:
        writer.close()
        sse_writer.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---- the run --------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """How long and how hard to measure."""

    seconds: float  # per round, for each server
    rounds: int
    conns: int
    sse_samples: int
    unique_heads: bool = False


def _gateway_env(nats_url: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "VAULTMESH_NATS_URL": nats_url,
            "VAULTMESH_HTTP_HOST": HOST,
            "VAULTMESH_HTTP_PORT": str(port),
            "VAULTMESH_ADMIN_TOKENS": ADMIN_TOKEN,
            "VAULTMESH_AGENT_TOKENS": AGENT_TOKEN,
            "VAULTMESH_METRICS_PORT": "-1",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.pop("VAULTMESH_CONFIG", None)
    return env


@dataclass(frozen=True)
class Round:
    """One round: the floor, then the gateway, measured back to back."""

    floor: Load
    value: Load

    @property
    def ratio(self) -> float:
        return self.value.rps / self.floor.rps if self.floor.rps else 0.0


async def _rounds(plan: Plan, floor: tuple[int, int], gateway: tuple[int, int]) -> list[Round]:
    """Floor and gateway measured in alternation, so a busy spell of the machine
    falls on both rather than on one of them."""
    done: list[Round] = []
    for n in range(plan.rounds):
        make = heartbeat_maker(plan.unique_heads)  # the same kind of request for both
        low = await measure_rps(floor[0], make, plan.seconds, plan.conns, floor[1])
        high = await measure_rps(gateway[0], make, plan.seconds, plan.conns, gateway[1])
        done.append(Round(low, high))
        print(
            f"round {n + 1}/{plan.rounds}: floor {low.rps:,.0f}/s, "
            f"gateway {high.rps:,.0f}/s, ratio {done[-1].ratio:.3f}",
            file=sys.stderr,
            flush=True,
        )
    return done


async def _run(plan: Plan, work: Path, nats_url: str) -> dict[str, Any]:
    floor_port, gateway_port = free_port(), free_port()
    floor_cmd = [sys.executable, str(SCRIPT), "--serve-floor", str(floor_port)]
    gateway_cmd = [sys.executable, "-m", "vaultmesh.services.gateway"]
    gateway_env = _gateway_env(nats_url, gateway_port)
    with (
        process(floor_cmd, dict(os.environ), work / "floor.log") as floor_proc,
        process(gateway_cmd, gateway_env, work / "gateway.log") as gateway_proc,
    ):
        await wait_http(floor_port)
        await wait_http(gateway_port, "/healthz")
        rounds = await _rounds(plan, (floor_port, floor_proc.pid), (gateway_port, gateway_proc.pid))
        latencies = await measure_sse(gateway_port, plan.sse_samples)
    median = statistics.median
    floor_cpu = median(r.floor.cpu_us for r in rounds)
    value_cpu = median(r.value.cpu_us for r in rounds)
    return {
        "floor": round(median(r.floor.rps for r in rounds), 1),
        "value": round(median(r.value.rps for r in rounds), 1),
        # The median of the rounds' ratios: each compares two runs a few seconds apart.
        "ratio": round(median(r.ratio for r in rounds), 3),
        "ratios": [round(r.ratio, 3) for r in rounds],
        # Server CPU per request: less sensitive than req/s to a busy shared machine.
        "floor_cpu_us_per_req": round(floor_cpu, 1),
        "value_cpu_us_per_req": round(value_cpu, 1),
        "cpu_ratio": round(floor_cpu / value_cpu, 3) if value_cpu else 0.0,
        "sse_p50_ms": round(statistics.median(latencies), 2),
        "sse_p99_ms": round(percentile(latencies, 0.99), 2),
        "concurrency": plan.conns,
        "seconds": plan.seconds,
        "rounds": plan.rounds,
        "unique_heads": plan.unique_heads,
        "sse_samples": len(latencies),
    }


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the JSON result as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (a few seconds)")
    parser.add_argument(
        "--unique-heads",
        action="store_true",
        help="a header of its own on every request (no repeated heads, as behind a proxy "
        "that adds a request id)",
    )
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    shape = (2.0, 1, 16, 50) if args.quick else (4.0, 5, 32, 300)
    plan = Plan(*shape, unique_heads=args.unique_heads)
    with tempfile.TemporaryDirectory(prefix="vm-bench-gw-") as tmp:
        work = Path(tmp)
        with (
            NatsServer(data_dir=work / "nats") as nats,
            asyncio.Runner(loop_factory=_loop_factory()) as runner,
        ):
            result = runner.run(_run(plan, work, nats.url))
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
