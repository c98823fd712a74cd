"""`vaultmesh up` supervises what it starts: crashes are restarted, repeated ones stop it."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.test_up_support import (
    HAS_FLEET_VIEW,
    SERVICES,
    Up,
    _children_of,
    _running,
    _stop_and_check_no_child_left,
    _wait_for,
)
from vaultmesh.cli.up import READY_PREFIX

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


pytestmark = pytest.mark.slow


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
