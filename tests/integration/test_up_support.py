"""Harness of the `vaultmesh up` tests (this module has no tests): run `up` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
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


def _stop_and_check_no_child_left_or_none(run: Up) -> None:
    assert run.proc is not None
    children = _children_of(run.proc.pid)
    assert run.terminate(timeout=5) == 0
    assert [pid for pid in children if _running(pid)] == []
