"""The parts of `vaultmesh up`: discovery, environments, tokens, the process supervisor."""

from __future__ import annotations

import signal
import stat
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vaultmesh.shared.healthcheck import main as healthcheck
from vaultmesh.shared.localstack import (
    Env,
    LocalAuth,
    ServiceSpec,
    StackError,
    Tokens,
    discover,
    ensure_tokens,
)
from vaultmesh.shared.natsserver import free_port
from vaultmesh.shared.supervisor import Crash, RestartPolicy, Supervisor, tail


@pytest.fixture
def fake_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``fakevm.services`` with several kinds of service package."""
    root = tmp_path / "fakevm"
    packages = {
        "alpha": {"__main__.py": ""},
        "beta": {
            "__main__.py": "",
            "local.py": textwrap.dedent(
                """
                MICRO_NAME = "beta-svc"
                def local_env(data_dir):
                    (data_dir / "key").write_text("k")
                    return {"BETA_KEY_FILE": str(data_dir / "key"), "VAULTMESH_DATA_DIR": "x"}
                """
            ),
        },
        "gateway": {"__main__.py": "", "local.py": "MICRO_NAME = None\n"},
        "agent": {"__main__.py": ""},
        "library": {"helpers.py": ""},
    }
    (root / "services").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "services" / "__init__.py").write_text("")
    for package, files in packages.items():
        directory = root / "services" / package
        directory.mkdir()
        for name, text in {"__init__.py": "", **files}.items():
            (directory / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakevm.services"
    for name in [m for m in sys.modules if m.startswith("fakevm")]:
        del sys.modules[name]


def test_discovery_follows_the_contract(fake_services: str) -> None:
    specs = {spec.name: spec for spec in discover(fake_services)}
    assert sorted(specs) == ["alpha", "beta", "gateway"]  # not agent, not a library package
    assert specs["alpha"].micro_name is None
    assert specs["beta"].micro_name == "beta-svc"
    assert specs["gateway"].is_gateway
    assert specs["beta"].argv[1:] == ["-m", "fakevm.services.beta"]


def _env(tmp_path: Path, auth: LocalAuth | None = None) -> Env:
    tokens = Tokens(tmp_path / "admin.token", tmp_path / "agent.token")
    return Env(tmp_path, "nats://127.0.0.1:4999", "DEBUG", tokens, "127.0.0.1", auth)


def test_service_env_has_the_contract_variables(fake_services: str, tmp_path: Path) -> None:
    specs = {spec.name: spec for spec in discover(fake_services)}
    env = _env(tmp_path).for_service(specs["beta"], 8123)
    assert env["VAULTMESH_NATS_URL"] == "nats://127.0.0.1:4999"
    assert env["VAULTMESH_DATA_DIR"] == str(tmp_path / "beta")  # up's value wins over the hook
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["VAULTMESH_METRICS_PORT"] == "-1"
    assert env["BETA_KEY_FILE"] == str(tmp_path / "beta" / "key")
    assert "VAULTMESH_HTTP_PORT" not in env
    gateway = _env(tmp_path).for_service(specs["gateway"], 8123)
    assert gateway["VAULTMESH_HTTP_PORT"] == "8123"
    assert gateway["VAULTMESH_ADMIN_TOKENS_FILE"] == str(tmp_path / "admin.token")
    assert gateway["VAULTMESH_AGENT_TOKENS_FILE"] == str(tmp_path / "agent.token")


def test_agent_env_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTMESH_NODE_ID", "550e8400-e29b-41d4-a716-446655440000")
    one, two = (_env(tmp_path).for_agent(n, 5) for n in (1, 2))
    assert "VAULTMESH_NODE_ID" not in one
    assert one["VAULTMESH_STATE_DIR"] != two["VAULTMESH_STATE_DIR"]
    assert one["VAULTMESH_HEARTBEAT_SECS"] == "5"
    assert one["VAULTMESH_NATS_URL"] == "nats://127.0.0.1:4999"
    assert Path(one["VAULTMESH_ROOT"]).is_dir()


def test_nats_identities_reach_each_process(tmp_path: Path) -> None:
    auth = LocalAuth.load(tmp_path / "secrets")
    env = _env(tmp_path, auth)
    gateway = env.for_service(ServiceSpec("gateway"), 8088)
    agent = env.for_agent(1, 5)
    assert gateway["VAULTMESH_NATS_USER"] == "gateway"
    assert agent["VAULTMESH_NATS_USER"] == "agent"
    assert gateway["VAULTMESH_NATS_PASSWORD"] != agent["VAULTMESH_NATS_PASSWORD"]
    assert "authorization" in auth.server_config
    assert auth.settings("nats://127.0.0.1:1").nats_user == "admin"


def test_unknown_service_has_no_identity(tmp_path: Path) -> None:
    env = _env(tmp_path, LocalAuth.load(tmp_path / "secrets"))
    with pytest.raises(StackError, match="no NATS identity for service 'newthing'"):
        env.for_service(ServiceSpec("newthing"), 8088)


def test_tokens_are_created_once_and_private(tmp_path: Path) -> None:
    tokens = ensure_tokens(tmp_path / "secrets")
    admin = tokens.admin.read_text()
    assert len(admin.strip()) >= 32
    assert admin != tokens.agent.read_text()
    assert stat.S_IMODE(tokens.admin.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert ensure_tokens(tmp_path / "secrets").admin.read_text() == admin


def test_supervisor_stops_children_and_kills_stubborn_ones(tmp_path: Path) -> None:
    supervisor = Supervisor()
    polite = supervisor.spawn(
        "polite",
        [sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(60)"],
        {},
        tmp_path / "polite.log",
    )
    stubborn_code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    stubborn = supervisor.spawn(
        "stubborn", [sys.executable, "-c", stubborn_code], {}, tmp_path / "stubborn.log"
    )
    _wait_for_line(tmp_path / "stubborn.log", "ready")
    _wait_for_line(tmp_path / "polite.log", "hello")
    assert supervisor.exited() == []
    killed = supervisor.stop(grace=0.5)
    assert killed == [stubborn]
    assert not polite.alive()
    assert not stubborn.alive()
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert supervisor.exited() == [polite, stubborn]


def test_exited_child_is_reported_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor()
    code = "import sys; print('line 1'); print('boom: bad config'); sys.exit(3)"
    child = supervisor.spawn("crash", [sys.executable, "-c", code], {}, tmp_path / "c.log")
    assert child.proc is not None
    child.proc.wait(timeout=60)
    assert supervisor.exited() == [child]
    assert child.returncode == 3
    assert child.tail(1) == ["boom: bad config"]
    supervisor.stop()


def test_crashed_child_is_restarted_with_backoff_until_it_crashes_too_often(
    tmp_path: Path,
) -> None:
    policy = RestartPolicy(backoff_s=0.05, max_backoff_s=0.1, max_restarts=3, window_s=600)
    supervisor = Supervisor(policy=policy)
    log = tmp_path / "c.log"
    code = "import sys; print('run', flush=True); sys.exit(3)"
    child = supervisor.spawn("crash", [sys.executable, "-c", code], {}, log)
    crashes: list[Crash] = []
    deadline = time.monotonic() + 60
    while not crashes or crashes[-1].restart_in is not None:
        assert time.monotonic() < deadline, f"only {crashes}"
        crashes += supervisor.crashed()
        supervisor.restart_due()
        time.sleep(0.02)
    assert [(c.returncode, c.crashes, c.restart_in) for c in crashes] == [
        (3, 1, 0.05),
        (3, 2, 0.1),
        (3, 3, 0.1),  # the backoff doubles up to its cap
        (3, 4, None),  # one crash more than --max-restarts: given up
    ]
    assert crashes[0].describe() == "exited with code 3"
    assert child.restarts == 3
    assert log.read_text().split() == ["run"] * 4  # every run appended to one log
    assert supervisor.crashed() == []  # reported once
    assert supervisor.restart_due() == []
    assert not child.alive()


def test_a_crash_by_signal_is_named_and_stop_cancels_a_pending_restart(tmp_path: Path) -> None:
    supervisor = Supervisor(policy=RestartPolicy(backoff_s=600))
    sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    child = supervisor.spawn("sleeper", sleeper, {}, tmp_path / "s.log")
    _wait_for_line(tmp_path / "s.log", "up")
    child.signal(signal.SIGKILL)
    assert child.proc is not None
    child.proc.wait(timeout=30)
    (crash,) = supervisor.crashed()
    assert crash.describe() == "was killed by SIGKILL"
    assert supervisor.pending() == [child]
    supervisor.stop(grace=0.5)
    assert supervisor.pending() == []
    assert supervisor.restart_due(time.monotonic() + 3600) == []


def test_tail_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "nope.log") == []


def _wait_for_line(path: Path, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


@pytest.fixture
def metrics_server() -> Iterator[str]:
    """A real HTTP server answering like a service's metrics endpoint."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            up = "1.0" if self.path == "/ready" else "0.0"
            body = f'# HELP x\nvaultmesh_up{{service="fleet-state"}} {up}\n'.encode()
            self.send_response(200 if self.path != "/broken" else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_healthcheck_reads_the_up_metric(metrics_server: str) -> None:
    assert healthcheck([f"{metrics_server}/ready", "--expect", "up"]) == 0
    assert healthcheck([f"{metrics_server}/starting", "--expect", "up"]) == 1
    assert healthcheck([f"{metrics_server}/starting"]) == 0
    assert healthcheck([f"{metrics_server}/broken"]) == 1
    assert healthcheck([f"http://127.0.0.1:{free_port()}/", "--timeout", "1"]) == 1
