"""`vaultmesh up` as a real process: ready line, live fleet, clean stop, restart, failures."""

from __future__ import annotations

import stat
from collections.abc import Callable

import pytest

from tests.integration.test_up_support import (
    HAS_FLEET_VIEW,
    SERVICES,
    Up,
    _stop_and_check_no_child_left,
    _stop_and_check_no_child_left_or_none,
    _wait_for,
)
from vaultmesh.cli.up import READY_PREFIX

pytestmark = pytest.mark.slow


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
