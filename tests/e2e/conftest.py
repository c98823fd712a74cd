"""End-to-end fixtures: the real system (nats-server, fleet-state, gateway) and a real Chromium.

fleet-state and the gateway run as subprocesses exactly as ``vaultmesh up``
starts them (``python -m vaultmesh.services.<name>``), configured only through
their environment variables. The browser is Debian's Chromium driven by
Playwright; tests that need it skip, saying why, when it is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from vaultmesh.shared.natsserver import NatsServer, free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = Path(os.environ.get("VAULTMESH_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_INSTALL = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"
AGENT_TOKEN = "e2e-agent-token-0123456789abcdef"
START_TIMEOUT_S = 90.0


@dataclass
class Stack:
    """The running system under test."""

    base_url: str
    admin_token: str
    agent_token: str
    logs: dict[str, Path]

    def admin_client(self) -> httpx.AsyncClient:
        """An HTTP client that signs in with the admin bearer token."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10.0)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of every service log, for failure messages."""
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)


def _service_env(nats_url: str, data_dir: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "VAULTMESH_NATS_URL": nats_url,
            "VAULTMESH_DATA_DIR": str(data_dir),
            "VAULTMESH_METRICS_PORT": "-1",
            "VAULTMESH_HTTP_HOST": "127.0.0.1",
            "VAULTMESH_HTTP_PORT": str(port),
            "VAULTMESH_ADMIN_TOKENS": ADMIN_TOKEN,
            "VAULTMESH_AGENT_TOKENS": AGENT_TOKEN,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("VAULTMESH_CONFIG", None)
    return env


def _start(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"vaultmesh.services.{name}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(stack: Stack, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """Until the gateway is ready AND fleet-state answers through it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited with {proc.returncode}\n{stack.log_tail()}")
            try:
                ready = client.get("/readyz").status_code == 200
                if ready and client.get("/api/fleet/counts", headers=headers).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"system not ready within {START_TIMEOUT_S:g}s\n{stack.log_tail()}")


@pytest.fixture(scope="module")
def stack(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """fleet-state and the gateway as subprocesses on the module's nats-server."""
    root = tmp_path_factory.mktemp("stack")
    port = free_port()
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}",
        admin_token=ADMIN_TOKEN,
        agent_token=AGENT_TOKEN,
        logs={name: root / f"{name}.log" for name in ("fleet", "gateway")},
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("fleet", "gateway"):
            data_dir = root / name
            data_dir.mkdir()
            env = _service_env(nats_server.url, data_dir, port)
            procs[name] = _start(name, env, stack.logs[name])
        _wait_ready(stack, procs)
        yield stack
    finally:
        for proc in reversed(list(procs.values())):
            _stop(proc)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; browser tests skip (with the install command) when it is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found; install it with: {CHROMIUM_INSTALL}")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    """A headless Chromium (never downloaded: the system binary only)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def signed_in(browser: Any, stack: Stack) -> AsyncIterator[Any]:
    """A browser context signed in through the real ``POST /login`` form endpoint."""
    context = await browser.new_context(
        base_url=stack.base_url, viewport={"width": 1440, "height": 900}
    )
    reply = await context.request.post("/login", form={"token": stack.admin_token})
    assert reply.ok, f"login failed: HTTP {reply.status}"
    cookies = {c["name"] for c in await context.cookies()}
    assert "vaultmesh_session" in cookies
    try:
        yield context
    finally:
        await context.close()
