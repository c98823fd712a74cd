"""Refused NATS logins leave a trace: the server's advisories become signed audit entries.

A real nats-server with the generated users (and the system account's monitor),
a real logger connected as ``logger`` with the monitor's credentials; clients
try to log in with a wrong password or as nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from tests.integration.test_vault_helpers import AuthNats, provision_all
from vaultmesh.services.logger.authfail import ACTION
from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.local import local_env
from vaultmesh.services.logger.service import LoggerService, build_for
from vaultmesh.shared import bus, natsauth, subjects
from vaultmesh.shared.clock import SystemClock
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.natsserver import NatsServer


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthNats]:
    identities = natsauth.load_or_create(tmp_path_factory.mktemp("auth"))
    config = natsauth.server_config(identities)
    with NatsServer(tmp_path_factory.mktemp("nats"), extra_config=config) as server:
        auth = AuthNats(server, identities)
        asyncio.run(provision_all(auth))
        yield auth


@contextlib.asynccontextmanager
async def running_logger(
    auth: AuthNats, data_dir: Path, *, monitor: bool = True
) -> AsyncIterator[tuple[LoggerService, ServiceMetrics, Client]]:
    extra: dict[str, Any] = {}
    if monitor:
        extra = {
            "logger_monitor_user": natsauth.MONITOR,
            "logger_monitor_password": auth.identities[natsauth.MONITOR].password,
        }
    settings = LoggerSettings(
        nats_url=auth.server.url,
        nats_user="logger",
        nats_password=auth.identities["logger"].password,
        data_dir=data_dir / "log",
        logger_signing_key_file=Path(local_env(data_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"]),
        logger_checkpoint_interval_s=3600,
        logger_fetch_wait_s=0.2,
        **extra,
    )
    conn = await bus.connect(settings, "logger")
    metrics = ServiceMetrics("logger")
    service = await build_for(settings, SystemClock())(conn, metrics)
    await service.start()
    try:
        yield service, metrics, conn
    finally:
        await service.stop()
        await bus.close(conn)


def refused_login(server: NatsServer, user: str, password: str) -> bytes:
    """Speak the protocol directly (a failed nats-py connect leaks its socket)."""
    connect = {"user": user, "pass": password, "verbose": False}
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.recv(4096)  # INFO
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        return sock.recv(4096)


def auth_errors(service: LoggerService) -> list[dict[str, Any]]:
    found = []
    for path in sorted(service.log.directory.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry.get("subject") == subjects.audit("logger", ACTION):
                found.append(entry)
    return found


async def wait_for(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def counted(metrics: ServiceMetrics, result: str) -> float:
    value: float = (
        metrics.registry.get_sample_value(
            "vaultmesh_logger_nats_auth_errors_total", {"service": "logger", "result": result}
        )
        or 0.0
    )
    return value


async def test_refused_logins_become_signed_audit_entries(auth: AuthNats, tmp_path: Path) -> None:
    wrong = "not-the-password-" + "x" * 8
    async with running_logger(auth, tmp_path) as (service, metrics, _conn):
        assert b"Authorization Violation" in refused_login(auth.server, "gateway", wrong)
        assert b"Authorization Violation" in refused_login(auth.server, "nobody", wrong)
        await wait_for(lambda: len(auth_errors(service)) >= 2)
        assert counted(metrics, "recorded") == 2
    entries = auth_errors(service)
    principals = sorted(e["payload"]["principal"] for e in entries)
    assert principals == ["gateway", "nobody"]
    for entry in entries:
        record = entry["payload"]
        assert record["outcome"] == "denied"
        assert record["severity"] == "warning"
        assert record["detail"]["host"] == "127.0.0.1"
        assert record["detail"]["reason"]
    log_text = "".join(p.read_text() for p in service.log.directory.rglob("*.jsonl"))
    assert wrong not in log_text


async def test_a_storm_of_refused_logins_is_bounded(auth: AuthNats, tmp_path: Path) -> None:
    async with running_logger(auth, tmp_path) as (service, metrics, _conn):
        assert service.watch is not None
        for _ in range(30):
            refused_login(auth.server, "vault", "wrong")
        await wait_for(lambda: counted(metrics, "recorded") + counted(metrics, "suppressed") >= 30)
        recorded = counted(metrics, "recorded")
        assert recorded == 20  # the default burst in one 10 s window
        refused_login(auth.server, "vault", "wrong")  # still in the window: held back too
        await wait_for(lambda: counted(metrics, "suppressed") >= 11)


async def test_the_monitor_may_only_listen(auth: AuthNats) -> None:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    nc = await auth.connect(natsauth.MONITOR, error_cb=on_error)
    try:
        await nc.publish(subjects.vault("admin", "get"), b"{}")
        await nc.subscribe("$SYS.REQ.>")
        await nc.flush()
        await wait_for(lambda: len(errors) >= 2, timeout=5)
    finally:
        await nc.close()
    assert any("publish" in e for e in errors)
    assert any("subscription" in e for e in errors)


async def test_without_monitor_credentials_the_logger_runs_unwatched(
    auth: AuthNats, tmp_path: Path
) -> None:
    before = await recorded_in_stream(auth)
    async with running_logger(auth, tmp_path, monitor=False) as (_service, metrics, _conn):
        refused_login(auth.server, "gateway", "wrong")
        await asyncio.sleep(0.5)
        assert counted(metrics, "recorded") == 0
    assert await recorded_in_stream(auth) == before


async def recorded_in_stream(auth: AuthNats) -> int:
    """How many auth-error records stream AUDIT holds."""
    subject = subjects.audit("logger", ACTION)
    nc = await auth.connect(natsauth.PROVISIONER)
    try:
        info = await nc.jetstream().stream_info(subjects.STREAM_AUDIT, subjects_filter=subject)
    finally:
        await bus.close(nc)
    return int((info.state.subjects or {}).get(subject, 0))
