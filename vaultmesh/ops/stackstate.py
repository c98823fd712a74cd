"""What Swarm runs for a stack, read through the Docker SDK into plain records.

Services and their tasks come from the manager; container health only from the engine
the command talks to (Swarm's task API has none), so a task on another node shows its
task state and no health. Swarm keeps a task with a healthcheck in ``starting`` until
the check first passes, so ``running`` already means it passed once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vaultmesh.ops.errors import StackNotFound

STACK_LABEL = "com.docker.stack.namespace"


@dataclass(frozen=True)
class Task:
    """One task of a service: where it runs and how it is doing."""

    id: str
    slot: int | None
    node: str
    state: str
    desired: str
    health: str | None
    exit_code: int | None
    error: str
    # Made from an older spec than the service's (a rolling update is under way).
    outdated: bool


@dataclass(frozen=True)
class Service:
    """One stack service with its current tasks (finished one-shot runs included)."""

    name: str
    image: str
    # Replicas wanted; None for a global service.
    desired: int | None
    running: int
    # A service restarted only on failure (the provisioning step) is done once complete.
    one_shot: bool
    tasks: tuple[Task, ...]
    # Earlier tasks that failed or were rejected, as Swarm still remembers them.
    failures: int
    # The rolling update's state (``updating``, ``rollback_completed`` ...), if any.
    update: str | None
    update_message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _spec(service: Any) -> dict[str, Any]:
    return dict(service.attrs.get("Spec") or {})


def image_of(service: Any) -> str:
    """The image a service's tasks run (digest included when Swarm pinned one)."""
    return str(_spec(service)["TaskTemplate"]["ContainerSpec"]["Image"])


def secrets_of(service: Any) -> dict[str, str]:
    """The service's secrets: target file name -> Docker secret name."""
    mounted = _spec(service)["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
    return {s["File"]["Name"]: s["SecretName"] for s in mounted}


def services(client: Any, stack: str) -> list[Any]:
    """The SDK service objects of ``stack``, by name; StackNotFound when there is none."""
    found = client.services.list(filters={"label": f"{STACK_LABEL}={stack}"})
    if not found:
        raise StackNotFound(f"no service of stack {stack!r} runs on this Swarm")
    return sorted(found, key=lambda s: s.name)


def _healths(client: Any, stack: str) -> dict[str, str]:
    healths = {}
    for container in client.containers.list(filters={"label": f"{STACK_LABEL}={stack}"}):
        health = (container.attrs.get("State") or {}).get("Health") or {}
        if health.get("Status"):
            healths[container.id] = str(health["Status"])
    return healths


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    # Swarm copies the service's task template into each task it makes from it; the API
    # only adds the default ``Runtime`` to the service's copy.
    return {k: v for k, v in spec.items() if k != "Runtime"}


def _task(raw: dict[str, Any], healths: dict[str, str], template: dict[str, Any]) -> Task:
    status = raw.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    exit_code = container.get("ExitCode")
    return Task(
        id=str(raw.get("ID", ""))[:12],
        slot=raw.get("Slot"),
        node=str(raw.get("NodeID", ""))[:12],
        state=str(status.get("State", "unknown")),
        desired=str(raw.get("DesiredState", "")),
        health=healths.get(str(container.get("ContainerID", ""))),
        exit_code=None if exit_code is None else int(exit_code),
        error=str(status.get("Err", "")),
        outdated=_comparable(raw.get("Spec") or {}) != _comparable(template),
    )


def _current(tasks: list[Task], one_shot: bool, order: list[dict[str, Any]]) -> list[Task]:
    live = [t for t in tasks if t.desired in ("running", "ready", "accepted")]
    if live or not one_shot or not tasks:
        return live
    # A finished one-shot run: Swarm asks it to shut down, its latest task tells the outcome.
    newest = max(
        range(len(tasks)), key=lambda i: int((order[i].get("Version") or {}).get("Index", 0))
    )
    return [tasks[newest]]


def _service(raw: Any, healths: dict[str, str]) -> Service:
    spec = _spec(raw)
    mode = spec.get("Mode") or {}
    desired = (mode.get("Replicated") or {}).get("Replicas")
    condition = (spec["TaskTemplate"].get("RestartPolicy") or {}).get("Condition", "any")
    one_shot = condition in ("on-failure", "none")
    order = list(raw.tasks())
    update = raw.attrs.get("UpdateStatus") or {}
    tasks = [_task(t, healths, spec["TaskTemplate"]) for t in order]
    current = _current(tasks, one_shot, order)
    failures = sum(t.state in ("failed", "rejected") for t in tasks if t not in current)
    return Service(
        name=raw.name,
        image=image_of(raw),
        desired=None if desired is None else int(desired),
        running=sum(t.state == "running" for t in current),
        one_shot=one_shot,
        tasks=tuple(current),
        failures=failures,
        update=update.get("State"),
        update_message=str(update.get("Message", "")),
    )


def collect(client: Any, stack: str) -> list[Service]:
    """Every service of ``stack`` with its current tasks and their health."""
    healths = _healths(client, stack)
    return [_service(raw, healths) for raw in services(client, stack)]
