"""The verdict of `vaultmesh swarm status` on services, NATS servers and stream replicas."""

from __future__ import annotations

import dataclasses
from typing import Any

from vaultmesh.ops import report
from vaultmesh.ops.stackstate import Service, Task

SERVERS = ("nats-1", "nats-2", "nats-3")


def task(**changes: Any) -> Task:
    base = Task("t1", 1, "node", "running", "running", "healthy", None, "", False)
    return dataclasses.replace(base, **changes)


def service(name: str = "vm_vault", **changes: Any) -> Service:
    base = Service(name, "vaultmesh:local", 1, 1, False, (task(),), 0, None, "")
    return dataclasses.replace(base, **changes)


def server(name: str) -> dict[str, Any]:
    routes = [s for s in SERVERS if s != name]
    return {"server": f"{name}:8222", "name": name, "healthz": "ok", "routes": routes}


def stream(name: str, offline: str | None = None) -> dict[str, Any]:
    peers = [{"name": "nats-1", "current": True, "leader": True}]
    peers += [{"name": s, "current": True, "offline": s == offline, "lag": 0} for s in SERVERS[1:]]
    return {"name": name, "replicas": 3, "leader": "nats-1", "peers": peers, "messages": 0}


def probe(**changes: Any) -> dict[str, Any]:
    base = {
        "servers": [server(s) for s in SERVERS],
        "meta": {"leader": "nats-1", "cluster_size": 3, "peers": []},
        "streams": [stream("AUDIT"), stream("KV_VAULT")],
    }
    return {**base, **changes}


def test_a_well_stack_is_ok() -> None:
    provision = service("vm_provision", one_shot=True, tasks=(task(state="complete"),))
    built = report.build("vm", [service(), provision], probe(), ["AUDIT", "KV_VAULT"])
    assert built["problems"] == []
    assert built["ok"]
    assert report.render(built, [service(), provision]).endswith("stack vm: ok")


def test_missing_replicas_and_unhealthy_tasks_are_problems() -> None:
    short = service(desired=2, running=1)
    sick = service("vm_gateway", tasks=(task(health="unhealthy", id="abc"),))
    assert report.service_problems(short) == ["1/2 tasks running"]
    assert report.service_problems(sick) == ["task abc is unhealthy"]
    assert not report.converged([short])


def test_a_task_on_an_older_spec_or_an_update_under_way_is_not_converged() -> None:
    assert report.service_problems(service(tasks=(task(outdated=True),))) == [
        "1 task(s) on an older spec"
    ]
    assert report.service_problems(service(update="updating")) == ["update updating"]
    rolled = service(update="rollback_completed", update_message="update rolled back")
    assert report.service_problems(rolled) == ["last update rolled back: update rolled back"]


def test_the_provisioning_step_is_well_only_once_complete() -> None:
    def one_shot(*tasks: Task) -> Service:
        return service("vm_provision", one_shot=True, running=0, tasks=tasks)

    assert report.service_problems(one_shot(task(state="complete", health=None))) == []
    failed = one_shot(task(state="failed", exit_code=1, error="task: non-zero exit (1)"))
    assert report.service_problems(failed) == ["failed (exit 1): task: non-zero exit (1)"]
    assert report.service_problems(one_shot(task(state="running"))) == [
        "not complete yet (running)"
    ]
    assert report.service_problems(one_shot()) == ["has not run"]


def test_a_lost_nats_server_shows_on_servers_routes_and_every_replica() -> None:
    servers = [server("nats-1"), {"name": "nats-2", "error": "unreachable: URLError"}]
    servers += [server("nats-3")]
    servers[0]["routes"] = ["nats-3"]
    lost = probe(servers=servers, streams=[stream("AUDIT", offline="nats-2")])
    assert report.nats_problems(lost, ["AUDIT"]) == [
        "NATS nats-1: routes to 1 of 2 peers",
        "NATS nats-2: unreachable: URLError",
        "stream AUDIT: replica on nats-2 offline",
    ]


def test_missing_streams_leaderless_streams_and_short_replica_sets_are_problems() -> None:
    short = stream("EVENTS")
    short["peers"] = short["peers"][:2]
    leaderless = {**stream("HEARTBEATS"), "leader": None}
    behind = stream("KV_VAULT")
    behind["peers"][1].update(current=False, lag=7)
    found = probe(streams=[short, leaderless, behind], meta={"leader": None})
    assert report.nats_problems(found, ["AUDIT", "EVENTS", "HEARTBEATS", "KV_VAULT"]) == [
        "JetStream meta group has no leader",
        "stream AUDIT: missing",
        "stream EVENTS: 2 of 3 replicas",
        "stream HEARTBEATS: no leader",
        "stream KV_VAULT: replica on nats-2 behind (lag 7)",
    ]


def test_the_table_marks_a_replica_that_is_not_current() -> None:
    lines = report.nats_lines(probe(streams=[stream("AUDIT", offline="nats-3")]))
    assert any(line.startswith("AUDIT") and "nats-3!" in line for line in lines)
