"""Vault ``get`` benchmark against a bare ``nats.micro`` echo endpoint, in one run.

    .venv/bin/python benchmarks/vault.py [--quick] [--requests 4000] [--seconds 5]

Starts its own nats-server, then two service processes the same way:

1. floor: a bare ``nats.micro`` service whose endpoint replies with the request
   body (``--serve-echo``, this file run as a subprocess); it is sent 1 KiB, so
   the floor moves the secret's payload size too;
2. value: the real vault (``python -m vaultmesh.services.vault``, SQLite backend,
   best-effort audit: every request still produces an acknowledged audit record)
   answering ``get`` of a 1 KiB secret.

Each is measured from this process at 1 request in flight (``--requests``
sequential requests: p50/p99 latency) and at 50 in flight (50 workers for
``--seconds``: p50/p99 and requests per second), in ``--rounds`` rounds that
alternate echo and vault; each figure is the median over the rounds (other
work on a shared machine shifts single runs a lot). At 50 in flight it also
reports each service process's CPU time per request (from /proc), the figure
least disturbed by a busy machine. The last line is one JSON
object with both results and the ratios (targets: vault p50 <= 1.5x echo p50 at
1 in flight; vault throughput >= 0.6x echo at 50 in flight).

``--backend kv`` runs the vault on the JetStream KV backend instead. ``--list-keys N``
then also stores N secrets and measures, one request at a time, ``list`` of a
prefix holding 10 keys, ``list`` of everything, and ``status`` (which counts the
secrets): p50/p99 latency and the vault's CPU time per request (``vault_list``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402
from nats.aio.client import Client  # noqa: E402
from nats.micro import add_service  # noqa: E402
from nats.micro.request import Request  # noqa: E402

from vaultmesh.services.vault import masterkey  # noqa: E402
from vaultmesh.shared import bus, subjects  # noqa: E402
from vaultmesh.shared.config import BusSettings  # noqa: E402
from vaultmesh.shared.natsserver import NatsServer  # noqa: E402

ECHO_SUBJECT = "bench.echo"
PRINCIPAL = "admin"
KEY = "bench/secret-1k"
ACL = "acl:\n  - principal: admin\n    operations: ['*']\n"
IN_FLIGHT = 50
SECRET_BYTES = 1024


async def serve_echo(url: str) -> None:
    """The floor: a nats.micro endpoint that replies with the request body."""
    nc = await bus.connect(BusSettings(nats_url=url), "bench-echo")

    async def echo(request: Request) -> None:
        await request.respond(request.data)

    service = await add_service(nc, name="benchecho", version="1.0.0", queue_group="benchecho")
    await service.add_endpoint(name="echo", subject=ECHO_SUBJECT, handler=echo)
    print("ready", flush=True)
    await asyncio.Event().wait()


def start_echo(url: str) -> subprocess.Popen[bytes]:
    """Run the echo floor in its own process, like the vault."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-echo", url], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def start_vault(url: str, work: Path, backend: str) -> subprocess.Popen[bytes]:
    """Run the real vault service process."""
    key, acl = work / "master.key", work / "acl.yaml"
    masterkey.write_new(key)
    acl.write_text(ACL, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VAULTMESH_NATS_URL": url,
        "VAULTMESH_DATA_DIR": str(work / "vault"),
        "VAULTMESH_VAULT_MASTER_KEY_FILE": str(key),
        "VAULTMESH_VAULT_ACL_FILE": str(acl),
        "VAULTMESH_VAULT_BACKEND": backend,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "vaultmesh.services.vault"], env=env, cwd=ROOT)


async def wait_for(nc: Client, subject: str, body: bytes, timeout: float = 30.0) -> None:
    """Wait until ``subject`` answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await nc.request(subject, body, timeout=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    """p50/p99 in microseconds and requests per second."""
    ordered = sorted(latencies)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
        "rps": round(len(ordered) / elapsed, 1),
        "requests": len(ordered),
    }


async def sequential(nc: Client, subject: str, body: bytes, count: int) -> dict[str, float]:
    """``count`` requests one after the other."""
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        await nc.request(subject, body, timeout=5)
        latencies.append(time.perf_counter() - t0)
    return summary(latencies, time.perf_counter() - started)


async def concurrent(nc: Client, subject: str, body: bytes, seconds: float) -> dict[str, float]:
    """``IN_FLIGHT`` workers, each sending requests back to back for ``seconds``."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await nc.request(subject, body, timeout=10)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return summary(latencies, time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(nc: Client, target: tuple[str, bytes, int], args: argparse.Namespace) -> Any:
    """Both load shapes against one target, plus the service's CPU time per request."""
    subject, body, pid = target
    c1 = await sequential(nc, subject, body, args.requests)
    before = cpu_seconds(pid)
    many = await concurrent(nc, subject, body, args.seconds)
    many["service_cpu_us_per_request"] = round(
        (cpu_seconds(pid) - before) / many["requests"] * 1e6, 1
    )
    return {"c1": c1, f"c{IN_FLIGHT}": many}


def median_round(rounds: list[Any]) -> Any:
    """Per shape and figure, the median over the rounds (the machine is shared and noisy)."""
    return {
        shape: {
            figure: statistics.median(r[shape][figure] for r in rounds)
            for figure in rounds[0][shape]
        }
        for shape in rounds[0]
    }


async def compare(
    nc: Client,
    echo: tuple[str, bytes, int],
    vault: tuple[str, bytes, int],
    args: argparse.Namespace,
) -> tuple[Any, Any, list[float]]:
    """Warm both up, then measure them in alternating rounds; also each round's
    throughput ratio at 50 in flight (how much single rounds spread)."""
    for subject, body, _pid in (echo, vault):
        await sequential(nc, subject, body, max(100, args.requests // 10))
    echo_rounds, vault_rounds = [], []
    for _ in range(args.rounds):
        echo_rounds.append(await measure(nc, echo, args))
        vault_rounds.append(await measure(nc, vault, args))
    c = f"c{IN_FLIGHT}"
    per_round = [
        round(v[c]["rps"] / e[c]["rps"], 3) for e, v in zip(echo_rounds, vault_rounds, strict=True)
    ]
    return median_round(echo_rounds), median_round(vault_rounds), per_round


def ratios(echo: Any, vault: Any) -> dict[str, float]:
    """Vault over echo (latency: lower is better; throughput: higher is better)."""
    c = f"c{IN_FLIGHT}"
    return {
        "p50_c1": round(vault["c1"]["p50_us"] / echo["c1"]["p50_us"], 3),
        "p99_c1": round(vault["c1"]["p99_us"] / echo["c1"]["p99_us"], 3),
        f"p50_{c}": round(vault[c]["p50_us"] / echo[c]["p50_us"], 3),
        f"rps_{c}": round(vault[c]["rps"] / echo[c]["rps"], 3),
        "service_cpu_per_request": round(
            vault[c]["service_cpu_us_per_request"]
            / max(echo[c]["service_cpu_us_per_request"], 0.1),
            2,
        ),
    }


async def fill(nc: Client, count: int) -> None:
    """Store ``count`` secrets under ``bench/many/`` and 10 under ``bench/few/``, 50 at a time."""
    paths = [f"bench/many/{n:07d}" for n in range(count)] + [f"bench/few/{n}" for n in range(10)]
    subject = subjects.vault(PRINCIPAL, "set")
    for start in range(0, len(paths), IN_FLIGHT):
        batch = paths[start : start + IN_FLIGHT]
        await asyncio.gather(*(bus.request(nc, subject, {"key": p, "value": "v"}) for p in batch))


async def listing(nc: Client, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """Latency and vault CPU per request of list (a prefix, everything) and status."""
    shapes = {
        "list_prefix_10": (subjects.vault(PRINCIPAL, "list"), b'{"prefix": "bench/few/"}'),
        "list_all": (subjects.vault(PRINCIPAL, "list"), b"{}"),
        "status_count": (subjects.vault(PRINCIPAL, "status"), b"{}"),
    }
    await fill(nc, args.list_keys)
    result: dict[str, Any] = {"keys": args.list_keys + 10}
    for name, (subject, body) in shapes.items():
        count = max(20, args.requests // 20)
        before = cpu_seconds(pid)
        figures = await sequential(nc, subject, body, count)
        figures["vault_cpu_us_per_request"] = round((cpu_seconds(pid) - before) / count * 1e6, 1)
        result[name] = figures
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, measure echo then vault, return the result."""
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp) / "nats") as server:
        echo_proc = start_echo(server.url)
        vault_proc = start_vault(server.url, Path(tmp), args.backend)
        nc = await bus.connect(BusSettings(nats_url=server.url), "bench-client")
        try:
            get_subject = subjects.vault(PRINCIPAL, "get")
            get_body = json.dumps({"key": KEY}).encode()
            await wait_for(nc, subjects.vault(PRINCIPAL, "status"), b"{}")
            await bus.request(
                nc, subjects.vault(PRINCIPAL, "set"), {"key": KEY, "value": "x" * SECRET_BYTES}
            )
            echo, vault, per_round = await compare(
                nc,
                (ECHO_SUBJECT, b"x" * SECRET_BYTES, echo_proc.pid),
                (get_subject, get_body, vault_proc.pid),
                args,
            )
            listed = await listing(nc, vault_proc.pid, args) if args.list_keys else None
        finally:
            await bus.close(nc)
            for proc in (echo_proc, vault_proc):
                proc.terminate()
                proc.wait(10)
    result = {"backend": args.backend, "echo": echo, "vault_get": vault}
    result["ratios"] = ratios(echo, vault)
    if listed is not None:
        result["vault_list"] = listed
    result["ratios"][f"rps_c{IN_FLIGHT}_per_round"] = per_round
    result["targets_met"] = {
        "p50_c1<=1.5": result["ratios"]["p50_c1"] <= 1.5,
        f"rps_c{IN_FLIGHT}>=0.6": result["ratios"][f"rps_c{IN_FLIGHT}"] >= 0.6,
    }
    return result


def main() -> None:
    """Parse arguments; run the benchmark (or, internally, the echo floor)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter runs")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per target")
    parser.add_argument("--backend", choices=["sqlite", "kv"], default="sqlite")
    parser.add_argument("--list-keys", type=int, default=0, help="also measure list/status")
    parser.add_argument("--serve-echo", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        uvloop.run(serve_echo(args.serve_echo))
        return
    if args.quick:
        args.requests, args.seconds, args.rounds = 500, 1.0, 3
    print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
