"""Time to a 503: how long heartbeats wait for their answer when the bus goes away.

Runs its own nats-server and the real gateway process
(``python -m vaultmesh.services.gateway``), keeps ``--conns`` keep-alive
connections posting heartbeats back to back, then takes the bus away while they
do, in one of two ways:

* ``kill``: nats-server gets SIGKILL (the gateway sees its connection close);
* ``stop``: nats-server gets SIGSTOP (the connection stays open and silent:
  nothing tells the gateway, only the missing acknowledgements).

For each run it reports ``first_503_s`` (from the fault to the first 503) and
``max_wait_s`` (the longest any heartbeat answered after the fault waited for
its answer, from when it was sent). docs/gateway.md documents both as at most
``VAULTMESH_PUBLISH_TIMEOUT_S``. The server is then brought back (restarted on
the same port and store, or SIGCONT) and the next run waits for a 200 first.
The last line printed is one JSON object with every run and the maxima.

    .venv/bin/python benchmarks/busdown.py [--mode kill|stop] [--runs 5] [--timeout 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from vaultmesh.shared.natsserver import NatsServer, free_port  # noqa: E402

HOST = "127.0.0.1"
AGENT_TOKEN = "busdown-agent-token-0123456789abcdef"
ADMIN_TOKEN = "busdown-admin-token-0123456789abcdef"


def _request(node: uuid.UUID) -> bytes:
    body = orjson.dumps(
        {
            "node_id": str(node),
            "hostname": "busdown",
            "os_profile": "ArchVault",
            "cloudflare_ok": True,
            "services_ok": True,
            "vaultmesh_root": "/var/lib/vaultmesh",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    )
    head = (
        f"POST /api/agent/heartbeat HTTP/1.1\r\nHost: {HOST}\r\n"
        f"X-Host-Token: {AGENT_TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        (
            int(v)
            for n, _, v in (x.partition(":") for x in lines[1:])
            if n.lower() == "content-length"
        ),
        0,
    )
    await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


@dataclass
class Tally:
    """Every answer: (sent, answered, status), loop time."""

    answers: list[tuple[float, float, int]] = field(default_factory=list)


async def _worker(port: int, stop: asyncio.Event, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    node = uuid.uuid4()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while not stop.is_set():
            sent = loop.time()
            writer.write(_request(node))
            status = await _status(reader)
            tally.answers.append((sent, loop.time(), status))
            if status != 200:
                await asyncio.sleep(0.05)  # a client backing off a little, as agents do
    finally:
        writer.close()


async def _until_accepted(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(_request(uuid.uuid4()))
            status = await _status(reader)
            writer.close()
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("the gateway never accepted a heartbeat")


async def _one_run(args: argparse.Namespace, port: int, server: NatsServer) -> dict[str, float]:
    await _until_accepted(port)
    loop = asyncio.get_running_loop()
    tally, stop = Tally(), asyncio.Event()
    workers = [asyncio.create_task(_worker(port, stop, tally)) for _ in range(args.conns)]
    await asyncio.sleep(1.0)
    pid = server.pid
    assert pid is not None
    fault = loop.time()
    os.kill(pid, signal.SIGKILL if args.mode == "kill" else signal.SIGSTOP)
    # Long enough for any heartbeat sent around the fault to be answered.
    await asyncio.sleep(args.timeout * 3 + 2)
    stop.set()
    await asyncio.gather(*workers, return_exceptions=True)
    if args.mode == "kill":
        server.kill()  # reap it
        await asyncio.to_thread(server.start)  # same port and store
    else:
        os.kill(pid, signal.SIGCONT)
    after = [(s, a, st) for s, a, st in tally.answers if a >= fault]
    failures = [a for _s, a, st in after if st != 200]
    return {
        "first_503_s": round(min(failures) - fault, 3) if failures else -1.0,
        "max_wait_s": round(max(a - s for s, a, _st in after), 3) if after else -1.0,
        "answers_after_fault": float(len(after)),
    }


def _gateway(work: Path, nats_url: str, port: int, timeout: float) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VAULTMESH_")},
        "PYTHONPATH": str(REPO),
        "VAULTMESH_NATS_URL": nats_url,
        "VAULTMESH_HTTP_HOST": HOST,
        "VAULTMESH_HTTP_PORT": str(port),
        "VAULTMESH_ADMIN_TOKENS": ADMIN_TOKEN,
        "VAULTMESH_AGENT_TOKENS": AGENT_TOKEN,
        "VAULTMESH_METRICS_PORT": "-1",
        "VAULTMESH_PUBLISH_TIMEOUT_S": f"{timeout:g}",
        "LOG_LEVEL": "WARNING",
    }
    with (work / "gateway.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "vaultmesh.services.gateway"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _runs(args: argparse.Namespace, port: int, server: NatsServer) -> list[dict[str, float]]:
    runs = []
    for n in range(args.runs):
        result = await _one_run(args, port, server)
        runs.append(result)
        print(f"run {n + 1}/{args.runs}: {result}", file=sys.stderr, flush=True)
    return runs


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    server = NatsServer(data_dir=work / "nats").start()
    port = free_port()
    gateway = _gateway(work, server.url, port, args.timeout)
    try:
        runs = asyncio.run(_runs(args, port, server))
    finally:
        gateway.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            gateway.wait(15)
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        with contextlib.suppress(ProcessLookupError):
            if server.pid is not None:
                os.kill(server.pid, signal.SIGCONT)
        server.stop()
    return {
        "mode": args.mode,
        "publish_timeout_s": args.timeout,
        "runs": runs,
        "max_first_503_s": max(r["first_503_s"] for r in runs),
        "max_wait_s": max(r["max_wait_s"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("kill", "stop"), default="kill")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--conns", type=int, default=8, help="heartbeat connections (8)")
    parser.add_argument("--timeout", type=float, default=5.0, help="publish timeout, s (5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vm-busdown-") as work:
        result = _run(args, Path(work))
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
