"""`vaultmesh swarm secrets`, `deploy` and `status` against a real Docker Swarm.

Runs only where a Docker engine that is a Swarm manager answers (``DOCKER_HOST``) and
has the image (``VAULTMESH_IMAGE``, default ``vaultmesh:local``; scripts/swarm_test.sh
builds it); skipped otherwise, saying which. Deploys the stack as ``vmtest`` and
removes it, its volumes and the secrets it created afterwards.
"""

from __future__ import annotations

import gc
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vaultmesh.cli.main import main
from vaultmesh.cli.swarm import expected_streams
from vaultmesh.ops import secretfiles
from vaultmesh.ops.stackstate import STACK_LABEL, secrets_of

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
STACK = "vmtest"
IMAGE = os.environ.get("VAULTMESH_IMAGE", "vaultmesh:local")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """An SDK client of a Swarm manager that has the image, else skip saying why."""
    docker = pytest.importorskip("docker", reason="the Docker SDK is not installed")
    where = os.environ.get("DOCKER_HOST", "the default socket")
    engine, swarm = None, {}
    with warnings.catch_warnings():
        # docker-py leaves the socket of a failed connection to the garbage collector.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            engine = docker.from_env(timeout=30)
            swarm = engine.info().get("Swarm") or {}
        except docker.errors.DockerException:
            if engine is not None:
                engine.close()
            engine = None
        gc.collect()
    if engine is None:
        pytest.skip(f"no Docker engine answers at {where}")
    if not swarm.get("ControlAvailable"):
        pytest.skip(f"the engine at {where} is not a Swarm manager")
    try:
        engine.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"no image {IMAGE} on the engine (scripts/swarm_test.sh builds it)")
    if engine.services.list(filters={"label": f"{STACK_LABEL}={STACK}"}):
        pytest.fail(f"a stack {STACK!r} is already deployed; remove it first")
    yield engine
    engine.close()


def _stack_gone(client: Any) -> bool:
    label = {"label": f"{STACK_LABEL}={STACK}"}
    return not client.containers.list(all=True, filters=label)


def remove_stack(client: Any, created: list[str]) -> None:
    """What `docker stack rm` does, then the volumes and the secrets this test created."""
    label = {"label": f"{STACK_LABEL}={STACK}"}
    for service in client.services.list(filters=label):
        service.remove()
    deadline = time.monotonic() + 180
    while not _stack_gone(client) and time.monotonic() < deadline:
        time.sleep(2)
    for kind in (client.volumes, client.networks, client.configs):
        for item in kind.list(filters=label):
            item.remove()
    for name in created:
        client.secrets.get(name).remove()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["swarm", *argv])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def secret_lines(out: Path) -> set[str]:
    return {
        line.strip()
        for path in out.iterdir()
        if path.name != "nats_auth.conf"  # public keys only
        for line in path.read_text().splitlines()
        if len(line.strip()) >= 16 and "-----" not in line
    }


def upgrade_grants(
    client: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    out: Path,
    created: list[str],
    printed: list[str],
) -> None:
    """Unchanged files change no secret; new grants become a new secret the servers get."""
    code, said = run(capsys, "secrets", str(out))
    printed.append(said)
    assert code == 0
    assert not [line for line in said.splitlines() if line.startswith(("created", "new"))]
    # What a release with new grants does to the users file (no other way to change it).
    make = secretfiles.auth_config
    monkeypatch.setattr(secretfiles, "auth_config", lambda seeds: make(seeds) + "# new\n")
    code, said = run(capsys, "secrets", str(out))
    printed.append(said)
    (new,) = [line.split()[-1] for line in said.splitlines() if line.startswith("new version:")]
    created.append(new)
    code, said = run(capsys, "deploy", "--stack", STACK, "-c", str(ROOT / "stack.yml"))
    printed.append(said)
    assert code == 0, said
    assert f"VAULTMESH_STACK_NATS_AUTH_SECRET={new}" in said
    assert f"VAULTMESH_IMAGE={IMAGE}" in said  # what runs, not stack.yml's default
    nats = client.services.get(f"{STACK}_nats-2")
    assert secrets_of(nats)["nats_auth.conf"] == new
    code, said = run(capsys, "status", "--stack", STACK)
    printed.append(said)
    assert code == 0, said


def test_secrets_deploy_status(
    client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "stack-secrets"
    code, said = run(capsys, "secrets", str(out))
    assert code == 0, said
    created = [line.split()[-1] for line in said.splitlines() if line.startswith("created:")]
    printed = [said]
    try:
        code, said = run(
            capsys, "deploy", "--stack", STACK, "-c", str(ROOT / "stack.yml"), "--image", IMAGE
        )
        printed.append(said)
        assert code == 0, said

        code, said = run(capsys, "status", "--stack", STACK, "--json")
        printed.append(said)
        status = json.loads(said)
        assert status["problems"] == [], said
        assert code == 0
        by_name = {s["name"]: s for s in status["services"]}
        assert by_name[f"{STACK}_provision"]["tasks"][0]["state"] == "complete"
        assert by_name[f"{STACK}_gateway"]["running"] == 2
        streams = {s["name"]: s for s in status["nats"]["streams"]}
        assert set(expected_streams()) <= set(streams)
        for stream in expected_streams():
            assert streams[stream]["replicas"] == 3, stream
            assert {p["name"] for p in streams[stream]["peers"]} == {"nats-1", "nats-2", "nats-3"}

        code, said = run(capsys, "status", "--stack", STACK)
        printed.append(said)
        assert code == 0
        assert said.rstrip().endswith(f"stack {STACK}: ok")

        upgrade_grants(client, capsys, monkeypatch, out, created, printed)
    finally:
        remove_stack(client, created)
    secrets = secret_lines(out)
    assert not [line for line in secrets if any(line in text for text in printed)]
