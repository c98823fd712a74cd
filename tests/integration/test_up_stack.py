"""`vaultmesh up` as a real process: ready line, live fleet, clean stop, restart, failures."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import vaultmesh
from vaultmesh.cli.up import READY_PREFIX
from vaultmesh.shared.localstack import discover
from vaultmesh.shared.natsserver import free_port

PROJECT = str(Path(vaultmesh.__file__).resolve().parents[1])
SERVICES = {spec.name for spec in discover()}
HAS_FLEET_VIEW = {"fleet", "gateway"} <= SERVICES
pytestmark = pytest.mark.slow


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat_line.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@dataclass
class Up:
    """One `vaultmesh up` process with its output collected by reader threads."""

    data_dir: Path
    http_port: int
    agents: int = 2
    env: dict[str, str] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    pumps: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Up:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULTMESH_")}
        argv = [
            sys.executable,
            "-m",
            "vaultmesh.cli.main",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--nats-port",
            "0",
            "--http-port",
            str(self.http_port),
            "--agents",
            str(self.agents),
            "--agent-interval",
            "1",
            *self.options,
        ]
        self.proc = subprocess.Popen(
            argv,
            env={**clean, "PYTHONPATH": PROJECT, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            pump = threading.Thread(target=_pump, args=(stream, sink), daemon=True)
            pump.start()
            self.pumps.append(pump)
        return self

    def ready_line(self, timeout: float = 100.0) -> str:
        assert self.proc is not None

        def ready() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"up exited with {self.proc.returncode}: {''.join(self.stderr)}")
            return next((line for line in self.stdout if line.startswith(READY_PREFIX)), None)

        line: str = _wait_for(ready, timeout, "the ready line")
        return line

    def admin_token(self) -> str:
        return (self.data_dir / "secrets" / "admin.token").read_text().strip()

    def agent_token(self) -> str:
        return (self.data_dir / "secrets" / "agent.token").read_text().strip()

    def child(self, name: str) -> int | None:
        """The pid of the running child whose command line mentions ``name``."""
        assert self.proc is not None
        for pid in _children_of(self.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(name.encode() in part for part in argv) and _running(pid):
                return pid
        return None

    def said(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``up`` has written ``text`` to stderr or stdout."""
        _wait_for(lambda: text in "".join(self.stderr + self.stdout), timeout, repr(text))

    def heartbeat(self, node: str, hostname: str = "probe") -> int:
        body = {
            "node_id": node,
            "hostname": hostname,
            "os_profile": "ArchVault",
            "cloudflare_ok": True,
            "services_ok": True,
            "vaultmesh_root": "/var/lib/vaultmesh",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        try:
            response = httpx.post(
                f"http://127.0.0.1:{self.http_port}/api/agent/heartbeat",
                json=body,
                headers={"X-Host-Token": self.agent_token()},
                timeout=10,
            )
        except httpx.HTTPError:
            return 0
        return response.status_code

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(
                f"http://127.0.0.1:{self.http_port}{path}",
                headers={"Authorization": f"Bearer {self.admin_token()}"},
                timeout=10,
            )
        except httpx.HTTPError:
            return None

    def nodes(self) -> dict[str, Any]:
        response = httpx.get(
            f"http://127.0.0.1:{self.http_port}/api/nodes",
            headers={"Authorization": f"Bearer {self.admin_token()}"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def terminate(self, timeout: float) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def finish(self) -> None:
        """Kill what is left and release the pipes."""
        if self.proc is None:
            return
        for child in _children_of(self.proc.pid):
            os.kill(child, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pump in self.pumps:
            pump.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _pump(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


@pytest.fixture
def up_factory(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def make(**kwargs: Any) -> Up:
        kwargs.setdefault("data_dir", tmp_path / "vm")
        kwargs.setdefault("http_port", free_port())
        run = Up(**kwargs).start()
        started.append(run)
        return run

    yield make
    for run in started:
        run.finish()


def _stop_and_check_no_child_left(run: Up) -> None:
    assert run.proc is not None
    children = _children_of(run.proc.pid)
    assert len(children) >= 1 + run.agents  # nats-server, the services, the agents
    try:
        code = run.terminate(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("vaultmesh up did not exit within 5 s of SIGTERM")
    assert code == 0, "".join(run.stderr)
    assert [pid for pid in children if _running(pid)] == []


def test_up_runs_a_live_fleet_and_stops_cleanly(up_factory: Callable[..., Up]) -> None:
    run = up_factory()
    line = run.ready_line()
    secrets = run.data_dir / "secrets"
    admin_token = run.admin_token()
    assert admin_token not in line
    assert str(secrets / "admin.token") in line or "no gateway" in line
    for name in ("admin.token", "agent.token"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600
    assert (run.data_dir / "logs").is_dir()
    if HAS_FLEET_VIEW:
        listed = _wait_for(
            lambda: (body := run.nodes())["total"] == 2 and body, 60, "two nodes in /api/nodes"
        )
        assert {node["hostname"] for node in listed["nodes"]} == {"local-agent-1", "local-agent-2"}
    _stop_and_check_no_child_left(run)


@pytest.mark.skipif(not HAS_FLEET_VIEW, reason="needs the fleet and gateway services")
def test_restart_keeps_tokens_and_node_ids(up_factory: Callable[..., Up]) -> None:
    first = up_factory(agents=1)
    first.ready_line()
    token = first.admin_token()
    before = _wait_for(lambda: (b := first.nodes())["total"] == 1 and b, 60, "one node")
    _stop_and_check_no_child_left(first)

    second = up_factory(agents=1, data_dir=first.data_dir)
    second.ready_line()
    assert second.admin_token() == token
    seen = before["nodes"][0]["last_heartbeat"]
    after = _wait_for(
        lambda: (b := second.nodes())["nodes"][0]["last_heartbeat"] > seen and b,
        60,
        "a heartbeat after the restart",
    )
    assert after["total"] == 1  # the agent reused its node id: no second node appeared
    assert after["nodes"][0]["node_id"] == before["nodes"][0]["node_id"]
    _stop_and_check_no_child_left(second)


@pytest.mark.skipif(not SERVICES, reason="no service package exists yet")
def test_a_service_dying_at_startup_is_reported(up_factory: Callable[..., Up]) -> None:
    # Every service rejects this setting at start-up (ServiceSettings: must be > 0).
    run = up_factory(agents=0, env={"VAULTMESH_MAX_REQUEST_BYTES": "0"})
    assert run.proc is not None
    code = run.proc.wait(timeout=100)
    assert code == 1
    err = "".join(run.stderr)
    assert "exited with code 2" in err
    assert "VAULTMESH_MAX_REQUEST_BYTES" in err  # the service's own last log lines
    assert not any(line.startswith(READY_PREFIX) for line in run.stdout)


def test_second_up_on_the_same_data_dir_is_refused(up_factory: Callable[..., Up]) -> None:
    first = up_factory(agents=0)
    first.ready_line()
    second = up_factory(agents=0, data_dir=first.data_dir)
    assert second.proc is not None
    assert second.proc.wait(timeout=60) == 1
    assert "another `vaultmesh up` is using" in "".join(second.stderr)
    _stop_and_check_no_child_left_or_none(first)


def _stop_and_check_no_child_left_or_none(run: Up) -> None:
    assert run.proc is not None
    children = _children_of(run.proc.pid)
    assert run.terminate(timeout=5) == 0
    assert [pid for pid in children if _running(pid)] == []


# ---- supervision: crashes are restarted, the rest keeps running -----------------------
FAST_RESTART = ["--restart-backoff", "0.2"]


@pytest.mark.skipif(not HAS_FLEET_VIEW, reason="needs the fleet and gateway services")
def test_killed_nats_server_comes_back_and_keeps_what_it_acknowledged(
    up_factory: Callable[..., Up],
) -> None:
    run = up_factory(agents=0, options=FAST_RESTART)
    run.ready_line()
    url_file = run.data_dir / "nats" / "client-url"
    url = url_file.read_text()
    before = str(uuid.uuid4())
    assert run.heartbeat(before, "before-the-crash") == 200  # acknowledged by the stream
    nats = run.child("nats-server")
    assert nats is not None

    os.kill(nats, signal.SIGKILL)
    run.said("nats-server was killed by SIGKILL; restarting it")
    run.said("nats-server started again")
    again = run.child("nats-server")
    assert again is not None
    assert again != nats
    assert url_file.read_text() == url  # the same port: every client reconnects by itself
    after = str(uuid.uuid4())
    _wait_for(lambda: run.heartbeat(after) == 200, 60, "a heartbeat accepted again")
    run.said(READY_PREFIX + " again")

    def history(node: str) -> list[dict[str, Any]]:
        response = run.get(f"/api/nodes/{node}/history")
        if response is None or response.status_code != 200:
            return []
        beats: list[dict[str, Any]] = response.json()["heartbeats"]
        return beats

    # Read back from the restarted server's JetStream store.
    beats = _wait_for(lambda: history(before), 60, "the heartbeat sent before the crash")
    assert [beat["hostname"] for beat in beats] == ["before-the-crash"]
    _stop_and_check_no_child_left(run)


@pytest.mark.skipif(not HAS_FLEET_VIEW, reason="needs the fleet and gateway services")
def test_killed_service_is_restarted_and_the_others_keep_running(
    up_factory: Callable[..., Up],
) -> None:
    run = up_factory(agents=1, options=FAST_RESTART)
    run.ready_line()
    assert run.proc is not None
    others = set(_children_of(run.proc.pid))
    fleet = run.child("vaultmesh.services.fleet")
    assert fleet is not None
    others.discard(fleet)

    os.kill(fleet, signal.SIGKILL)
    run.said("fleet was killed by SIGKILL; restarting it")
    run.said("fleet started again")
    run.said(READY_PREFIX + " again")
    assert run.proc.poll() is None
    assert [pid for pid in others if not _running(pid)] == []  # nothing else was stopped
    listed = _wait_for(lambda: (b := run.nodes())["total"] == 1 and b, 60, "the agent's node")
    assert listed["nodes"][0]["hostname"] == "local-agent-1"
    _stop_and_check_no_child_left(run)


@pytest.mark.skipif(not SERVICES, reason="no service package exists yet")
def test_a_process_that_keeps_crashing_makes_up_give_up(up_factory: Callable[..., Up]) -> None:
    run = up_factory(agents=0, options=[*FAST_RESTART, "--max-restarts", "2"])
    run.ready_line()
    assert run.proc is not None
    name = sorted(SERVICES)[0]
    module = f"vaultmesh.services.{name}"
    children = set(_children_of(run.proc.pid))
    killed: list[int] = []

    def fresh() -> int | None:
        pid = run.child(module)
        return pid if pid not in killed else None

    for _ in range(3):  # the first crash and two restarts allowed, then no more
        pid = _wait_for(fresh, 60, f"{name} to run again")
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        children.add(pid)
    assert run.proc.wait(timeout=30) == 1
    err = "".join(run.stderr)
    assert f"{name} was killed by SIGKILL: 3 crashes within 60s" in err
    assert "giving up and stopping everything" in err
    assert [pid for pid in children if _running(pid)] == []


def test_sigterm_while_nats_is_down_exits_cleanly(up_factory: Callable[..., Up]) -> None:
    run = up_factory(agents=1, options=["--restart-backoff", "600"])
    run.ready_line()
    nats = run.child("nats-server")
    assert nats is not None
    os.kill(nats, signal.SIGKILL)
    run.said("nats-server was killed by SIGKILL; restarting it in 600s")
    # Let every client notice the loss (reconnecting, or still connecting for the first time).
    logs = list((run.data_dir / "logs").glob("*.log"))
    _wait_for(
        lambda: all("nats connection error" in log.read_text() for log in logs),
        60,
        "every process to lose NATS",
    )
    _stop_and_check_no_child_left(run)
    output = "".join(run.stdout + run.stderr)
    assert "Traceback" not in output
    for log in (run.data_dir / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name
