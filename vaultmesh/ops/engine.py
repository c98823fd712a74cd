"""The Docker engine connection of the Swarm commands (Docker SDK, ``docker`` package).

The SDK is imported here, when a command needs the engine, so that ``vaultmesh`` works
where it is not installed (in the image, on an agent's machine).
"""

from __future__ import annotations

import os
from typing import Any

from vaultmesh.ops.errors import EngineUnavailable

INSTALL_HINT = "pip install 'vaultmesh-swarm[swarm]'"


def host() -> str:
    """Where the engine is expected, for messages (``DOCKER_HOST`` or the default socket)."""
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def connect(timeout: float = 30.0) -> Any:
    """A ``docker.DockerClient`` of a Swarm manager, from ``DOCKER_HOST`` and friends."""
    try:
        import docker
    except ImportError:
        raise EngineUnavailable(f"the Docker SDK is not installed: {INSTALL_HINT}") from None
    try:
        client = docker.from_env(timeout=int(timeout))
        swarm = client.info().get("Swarm") or {}
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(
            f"no Docker engine answers at {host()} ({type(exc).__name__})"
        ) from None
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        client.close()
        raise EngineUnavailable(
            f"the engine at {host()} is not a Swarm manager (docker swarm init, or use a manager)"
        )
    return client
