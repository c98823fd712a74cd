"""The verdict on a stack's state, and its table for humans: pure functions of plain data.

A long-running service is well when its running tasks reach the desired replicas and
none reports a health other than ``healthy``; a one-shot service (the provisioning
step) when its latest run completed (exit 0). The NATS cluster is well when every
server answers ``/healthz``, routes to every other, the JetStream meta group has a
leader, and every expected stream exists with a leader and all its replicas current.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vaultmesh.ops.stackstate import Service, Task

_UPDATING = ("updating", "paused", "rollback_started", "rollback_paused")
_ROLLED_BACK = ("rollback_completed",)


def _one_shot_problems(service: Service) -> list[str]:
    if not service.tasks:
        return ["has not run"]
    task = service.tasks[0]
    if task.outdated:
        return [f"not run on the current spec yet ({task.state})"]
    if task.state == "complete":
        return []
    if task.state in ("failed", "rejected"):
        return [f"{task.state} (exit {task.exit_code}): {task.error or 'see its logs'}"]
    return [f"not complete yet ({task.state})"]


def service_problems(service: Service) -> list[str]:
    """What keeps one service from being well (empty when it is)."""
    if service.one_shot:
        return _one_shot_problems(service)
    problems = []
    if service.update in _UPDATING:
        problems.append(f"update {service.update}")
    elif service.update in _ROLLED_BACK:
        problems.append(f"last update rolled back: {service.update_message or service.update}")
    outdated = sum(t.outdated for t in service.tasks)
    if outdated:
        problems.append(f"{outdated} task(s) on an older spec")
    if service.desired is not None and service.running < service.desired:
        problems.append(f"{service.running}/{service.desired} tasks running")
    problems += [
        f"task {task.id} is {task.health}"
        for task in service.tasks
        if task.health not in (None, "healthy")
    ]
    return problems


def _server_problems(servers: list[dict[str, Any]]) -> list[str]:
    problems = []
    peers = len(servers) - 1
    for server in servers:
        name = server.get("name")
        if server.get("error"):
            problems.append(f"NATS {name}: {server['error']}")
            continue
        if server.get("healthz") != "ok":
            problems.append(f"NATS {name}: healthz {server.get('healthz')}")
        routes = server.get("routes") or []
        if len(routes) < peers:
            problems.append(f"NATS {name}: routes to {len(routes)} of {peers} peers")
    return problems


def _peer_problem(stream: str, peer: dict[str, Any]) -> str | None:
    if peer.get("offline"):
        return f"stream {stream}: replica on {peer.get('name')} offline"
    if not peer.get("current"):
        return f"stream {stream}: replica on {peer.get('name')} behind (lag {peer.get('lag', 0)})"
    return None


def stream_problems(stream: dict[str, Any]) -> list[str]:
    """What is wrong with one stream's replicas (empty when all are in place and current)."""
    name = stream.get("name")
    if not stream.get("leader"):
        return [f"stream {name}: no leader"]
    problems = []
    peers = stream.get("peers") or []
    wanted = int(stream.get("replicas") or 1)
    if len(peers) < wanted:
        problems.append(f"stream {name}: {len(peers)} of {wanted} replicas")
    problems += [p for p in (_peer_problem(str(name), peer) for peer in peers) if p]
    return problems


def nats_problems(probe: dict[str, Any], expected_streams: Iterable[str] = ()) -> list[str]:
    """What is wrong with the NATS cluster and its streams."""
    problems = _server_problems(probe.get("servers") or [])
    meta = probe.get("meta")
    if not meta or not meta.get("leader"):
        problems.append("JetStream meta group has no leader")
    streams = probe.get("streams") or []
    present = {s.get("name") for s in streams}
    problems += [f"stream {name}: missing" for name in expected_streams if name not in present]
    for stream in streams:
        problems += stream_problems(stream)
    return problems


def build(
    stack: str,
    services: list[Service],
    probe: dict[str, Any] | None,
    expected_streams: Iterable[str] = (),
) -> dict[str, Any]:
    """The whole report (``--json``): services, NATS, problems and an overall ``ok``."""
    problems = [f"{s.name}: {p}" for s in services for p in service_problems(s)]
    if probe is not None:
        problems += nats_problems(probe, expected_streams)
    return {
        "stack": stack,
        "ok": not problems,
        "problems": problems,
        "services": [s.as_dict() for s in services],
        "nats": probe,
    }


def converged(services: list[Service]) -> bool:
    """Whether every service is well (the wait of ``swarm deploy``)."""
    return bool(services) and not any(service_problems(s) for s in services)


def _tasks_text(tasks: tuple[Task, ...]) -> str:
    def one(task: Task) -> str:
        text = task.state if task.health is None else f"{task.state}/{task.health}"
        return text if task.exit_code in (None, 0) else f"{text} (exit {task.exit_code})"

    return ", ".join(one(t) for t in tasks) or "-"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _replicas(service: Service) -> str:
    if service.one_shot:
        return "one-shot"
    return f"{service.running}/{'global' if service.desired is None else service.desired}"


def service_lines(services: list[Service]) -> list[str]:
    """SERVICE REPLICAS TASKS FAILED table."""
    rows = [["SERVICE", "REPLICAS", "TASKS (state/health)", "EARLIER FAILURES"]]
    rows += [[s.name, _replicas(s), _tasks_text(s.tasks), str(s.failures)] for s in services]
    return _table(rows)


def _server_row(server: dict[str, Any]) -> list[str]:
    health = server.get("error") or server.get("healthz") or "?"
    routes = ",".join(server.get("routes") or []) or "-"
    return [str(server.get("name")), str(health), routes, str(server.get("version") or "-")]


def _peer_text(peer: dict[str, Any]) -> str:
    # "!" marks a replica that is offline or behind.
    well = peer.get("current") and not peer.get("offline")
    return f"{peer.get('name')}{'' if well else '!'}"


def _stream_row(stream: dict[str, Any]) -> list[str]:
    peers = ",".join(_peer_text(p) for p in stream.get("peers") or []) or "-"
    leader = str(stream.get("leader") or "-")
    return [
        str(stream.get("name")),
        str(stream.get("replicas")),
        leader,
        peers,
        str(stream.get("messages")),
    ]


def nats_lines(probe: dict[str, Any]) -> list[str]:
    """One table of servers, the meta leader, one table of streams."""
    servers = [["NATS SERVER", "HEALTH", "ROUTES TO", "VERSION"]]
    servers += [_server_row(s) for s in probe.get("servers") or []]
    streams = [["STREAM", "REPLICAS", "LEADER", "PEERS (! = offline or behind)", "MESSAGES"]]
    streams += [_stream_row(s) for s in probe.get("streams") or []]
    meta = probe.get("meta") or {}
    leader = meta.get("leader") or "none"
    meta_line = f"JetStream meta leader: {leader} (cluster size {meta.get('cluster_size', '?')})"
    return [*_table(servers), meta_line, "", *_table(streams)]


def render(report: dict[str, Any], services: list[Service]) -> str:
    """The human form of ``build``'s report."""
    lines = [*service_lines(services), ""]
    if report["nats"] is not None:
        lines += [*nats_lines(report["nats"]), ""]
    if report["ok"]:
        lines.append(f"stack {report['stack']}: ok")
    else:
        lines.append(f"stack {report['stack']}: {len(report['problems'])} problem(s)")
        lines += [f"  - {p}" for p in report["problems"]]
    return "\n".join(lines)
