"""The agent in HTTP mode against a real local HTTP server, in-process and as a process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import vaultmesh
from vaultmesh.services.agent.config import AgentSettings
from vaultmesh.services.agent.service import build_for
from vaultmesh.services.agent.state import read_node_id
from vaultmesh.shared.models.heartbeat import Heartbeat
from vaultmesh.shared.natsserver import free_port

HANG = 0  # a "status" meaning: do not answer until the test ends
TOKEN = "host-token-for-tests"
PROJECT = str(Path(vaultmesh.__file__).resolve().parents[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class CommandCenter:
    """A tiny real HTTP server standing in for the gateway's agent ingest."""

    statuses: deque[int] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        center = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                center.requests.append(Received(self.path, dict(self.headers), body))
                status = center.statuses.popleft() if center.statuses else 200
                if status == HANG:
                    center.release.wait(30)
                    status = 200
                payload = {"status": "ok"} if status == 200 else {"error": "ingest is down"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def cc() -> Iterator[CommandCenter]:
    center = CommandCenter()
    center.start()
    yield center
    center.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VAULTMESH_") or key in ("LOG_LEVEL", "RUST_LOG"):
            monkeypatch.delenv(key)


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (polling) until ``condition`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def settings_for(cc_url: str, tmp_path: Path, **extra: Any) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "cc_url": cc_url,
            "agent_token": TOKEN,
            "state_dir": tmp_path / "state",
            "root": tmp_path,
            "heartbeat_secs": 5,
            "hostname": "test-node",
            **extra,
        }
    )


# ---- in-process --------------------------------------------------------------------------


async def test_post_delivers_the_seed_heartbeat_with_the_host_token(
    cc: CommandCenter, tmp_path: Path
) -> None:
    agent = build_for(settings_for(cc.url, tmp_path))
    try:
        assert await agent.beat() is True
    finally:
        await agent.stop()
    [request] = cc.requests
    assert request.path == "/api/agent/heartbeat"
    assert request.headers["X-Host-Token"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    heartbeat = Heartbeat.model_validate(request.body)
    assert heartbeat.node_id == read_node_id(tmp_path / "state")
    assert heartbeat.hostname == "test-node"
    assert heartbeat.services_ok is True
    assert heartbeat.vaultmesh_root == str(tmp_path)
    assert heartbeat.interval_s == 5
    assert heartbeat.metrics is not None
    assert heartbeat.metrics.mem_total_bytes


async def test_non_2xx_is_logged_with_its_status_code(
    cc: CommandCenter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cc.statuses.append(503)
    agent = build_for(settings_for(cc.url, tmp_path))
    with caplog.at_level(logging.WARNING):
        assert await agent.beat() is False
    await agent.stop()
    [record] = [r for r in caplog.records if r.getMessage().startswith("heartbeat not delivered")]
    assert record.__dict__["status_code"] == 503
    assert "ingest is down" in record.__dict__["reason"]
    assert TOKEN not in caplog.text


async def test_keeps_beating_through_errors(cc: CommandCenter, tmp_path: Path) -> None:
    cc.statuses.extend([500, 404])
    agent = build_for(settings_for(cc.url, tmp_path, heartbeat_secs=0.05))
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: len(cc.requests) >= 4)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.stop()
    ids = {r.body["node_id"] for r in cc.requests}
    assert len(ids) == 1


async def test_unreachable_command_center_is_a_logged_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = build_for(settings_for(f"http://127.0.0.1:{free_port()}", tmp_path))
    with caplog.at_level(logging.WARNING):
        assert await agent.beat() is False
    await agent.stop()
    [record] = [r for r in caplog.records if r.getMessage().startswith("heartbeat not delivered")]
    assert "cannot reach" in record.__dict__["reason"]


# ---- as a process ------------------------------------------------------------------------


def agent_process(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULTMESH_")}
    full = {
        **clean,
        "PYTHONPATH": PROJECT,
        "VAULTMESH_STATE_DIR": str(tmp_path / "state"),
        "VAULTMESH_ROOT": str(tmp_path),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "vaultmesh.services.agent", *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_agent(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    proc = agent_process(tmp_path, *args, **env)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_node_id_persists_across_runs(cc: CommandCenter, tmp_path: Path) -> None:
    for _ in range(2):
        code, err = run_agent(tmp_path, "--once", VAULTMESH_CC_URL=cc.url)
        assert code == 0, err
    first, second = (UUID(r.body["node_id"]) for r in cc.requests)
    assert first == second == read_node_id(tmp_path / "state")
    code, err = run_agent(tmp_path, "--once", "--new-node-id", VAULTMESH_CC_URL=cc.url)
    assert code == 0, err
    renewed = UUID(cc.requests[-1].body["node_id"])
    assert renewed != first
    assert read_node_id(tmp_path / "state") == renewed


def test_once_fails_with_exit_1_on_non_2xx(cc: CommandCenter, tmp_path: Path) -> None:
    cc.statuses.append(401)
    code, err = run_agent(tmp_path, "--once", VAULTMESH_CC_URL=cc.url)
    assert code == 1
    assert '"status_code":401' in err


def test_env_file_configures_and_real_env_overrides(cc: CommandCenter, tmp_path: Path) -> None:
    env_file = tmp_path / "agent.env"
    env_file.write_text(
        f"VAULTMESH_CC_URL={cc.url}\nVAULTMESH_AGENT_TOKEN=from-file\n"
        "VAULTMESH_OS_PROFILE=DebianVault\nVAULTMESH_NODE_ID=550e8400-e29b-41d4-a716-446655440000\n"
    )
    code, err = run_agent(
        tmp_path, "--once", "--env-file", str(env_file), VAULTMESH_OS_PROFILE="ArchVault"
    )
    assert code == 0, err
    [request] = cc.requests
    assert request.headers["X-Host-Token"] == "from-file"
    assert request.body["os_profile"] == "ArchVault"
    assert request.body["node_id"] == "550e8400-e29b-41d4-a716-446655440000"


def test_refuses_plain_http_to_a_remote_host(tmp_path: Path) -> None:
    code, err = run_agent(tmp_path, "--once", VAULTMESH_CC_URL="http://192.0.2.10:8088")
    assert code == 2
    assert "VAULTMESH_CC_URL" in err
    assert "refusing plain http://" in err


def test_allow_insecure_http_lets_it_try(tmp_path: Path) -> None:
    code, err = run_agent(
        tmp_path,
        "--once",
        "--allow-insecure-http",
        VAULTMESH_CC_URL="http://192.0.2.10:8088",
        VAULTMESH_SEND_TIMEOUT="0.2",
    )
    assert code == 1
    assert "heartbeat not delivered" in err


def test_invalid_node_id_is_a_config_error(tmp_path: Path) -> None:
    code, err = run_agent(tmp_path, "--once", VAULTMESH_NODE_ID="node-1")
    assert code == 2
    assert "VAULTMESH_NODE_ID" in err


async def _stops_within_a_second(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(proc.wait, 1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("agent did not exit within 1 s of SIGTERM")
    proc.communicate()
    assert code == 0


async def test_sigterm_while_sleeping_exits_within_a_second(
    cc: CommandCenter, tmp_path: Path
) -> None:
    proc = agent_process(tmp_path, VAULTMESH_CC_URL=cc.url, VAULTMESH_HEARTBEAT_SECS="30")
    await until(lambda: len(cc.requests) >= 1 or proc.poll() is not None, 60)
    assert proc.poll() is None
    await _stops_within_a_second(proc)


async def test_sigterm_with_a_request_in_flight_exits_within_a_second(
    cc: CommandCenter, tmp_path: Path
) -> None:
    cc.statuses.append(HANG)
    proc = agent_process(tmp_path, VAULTMESH_CC_URL=cc.url, VAULTMESH_HEARTBEAT_SECS="30")
    await until(lambda: len(cc.requests) >= 1 or proc.poll() is not None, 60)
    assert proc.poll() is None
    await _stops_within_a_second(proc)
