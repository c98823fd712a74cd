"""Run ``natsprobe`` in a one-off container on the stack's network (NATS is not published).

The container runs the image the stack's NATS servers run, with this release's probe
passed as source to ``python -c``, and is removed afterwards. It mounts nothing and
gets no secret: the monitoring endpoints need none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaultmesh.ops import natsprobe, stackstate
from vaultmesh.ops.errors import ProbeFailed

NETWORK = "vaultmesh"  # the network's key in stack.yml
PROBE_LABEL = "io.vaultmesh.probe"


def network_of(stack: str) -> str:
    """The attachable overlay network ``docker stack deploy`` made for ``stack``."""
    return f"{stack}_{NETWORK}"


def probe_image(client: Any, stack: str) -> str:
    """The image of the stack's first NATS server (else of any of its services)."""
    found = stackstate.services(client, stack)
    nats = [s for s in found if s.name == f"{stack}_nats-1"]
    return stackstate.image_of((nats or found)[0])


def run(client: Any, stack: str, servers: list[str], image: str | None = None) -> dict[str, Any]:
    """The probe's report, from a container on ``stack``'s network."""
    import docker

    source = Path(natsprobe.__file__).read_text(encoding="utf-8")
    command = ["python", "-c", source, "--servers", ",".join(servers)]
    try:
        out = client.containers.run(
            image or probe_image(client, stack),
            command,
            network=network_of(stack),
            labels={PROBE_LABEL: stack},
            remove=True,
            stdout=True,
            stderr=False,
        )
    except docker.errors.ContainerError as exc:
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        raise ProbeFailed(f"the NATS probe failed: {' '.join(tail) or exc.exit_status}") from None
    except docker.errors.APIError as exc:
        raise ProbeFailed(f"could not run the NATS probe: {exc.explanation}") from None
    try:
        report = json.loads(out)
    except ValueError:
        raise ProbeFailed("the NATS probe printed no report") from None
    if not isinstance(report, dict):
        raise ProbeFailed("the NATS probe printed no report")
    return report
