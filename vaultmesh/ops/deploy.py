"""``docker stack deploy`` of stack.yml, with the secret names and image an operator means.

The Docker SDK has no stack deploy (compose-file parsing lives in the ``docker`` CLI),
so this runs the CLI for that one step; everything else goes through the SDK.

What the deploy-time variables of stack.yml name, unless the environment says:

- ``VAULTMESH_IMAGE``: ``--image``, else the image the stack runs now (a redeploy does
  not quietly switch back to ``vaultmesh:local``), else stack.yml's default;
- ``VAULTMESH_STACK_MASTER_KEY_SECRET`` / ``..._PREVIOUS_MASTER_KEY_SECRET``: the
  secrets the running vault mounts, so a redeploy after a master key change keeps the
  new key (docs/vault.md);
- ``VAULTMESH_STACK_NATS_AUTH_SECRET``: the newest ``nats_auth.conf`` secret
  (``dockersecrets``), so new grants reach the NATS servers.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from vaultmesh.ops import dockersecrets, report, stackstate
from vaultmesh.ops.errors import DeployFailed, NotConverged, StackNotFound

IMAGE_VAR = "VAULTMESH_IMAGE"
MASTER_VAR = "VAULTMESH_STACK_MASTER_KEY_SECRET"
PREVIOUS_VAR = "VAULTMESH_STACK_PREVIOUS_MASTER_KEY_SECRET"
AUTH_VAR = "VAULTMESH_STACK_NATS_AUTH_SECRET"
_VARS = (IMAGE_VAR, MASTER_VAR, PREVIOUS_VAR, AUTH_VAR)
_VAULT_TARGETS = {MASTER_VAR: "vault_master_key", PREVIOUS_VAR: "vault_master_key_previous"}
_POLL_S = 2.0


def _running(client: Any, stack: str) -> dict[str, Any]:
    try:
        return {s.name: s for s in stackstate.services(client, stack)}
    except StackNotFound:
        return {}


def stack_env(
    client: Any, stack: str, image: str | None, environ: dict[str, str]
) -> dict[str, str]:
    """The deploy-time variables: the operator's, else what runs now, else stack.yml's."""
    chosen: dict[str, str] = {}
    running = _running(client, stack)
    gateway = running.get(f"{stack}_gateway")
    if gateway is not None:
        chosen[IMAGE_VAR] = stackstate.image_of(gateway)
    vault = running.get(f"{stack}_vault")
    mounted = stackstate.secrets_of(vault) if vault is not None else {}
    chosen.update({var: mounted[t] for var, t in _VAULT_TARGETS.items() if t in mounted})
    auth = dockersecrets.newest_auth_secret(client)
    if auth:
        chosen[AUTH_VAR] = auth
    # The operator's variables win (a master key change names both secrets, docs/vault.md).
    chosen.update({var: environ[var] for var in _VARS if var in environ})
    if image:
        chosen[IMAGE_VAR] = image
    return chosen


def stack_deploy(compose: Path, stack: str, variables: dict[str, str]) -> str:
    """Run ``docker stack deploy``; its output (names only, never a secret value)."""
    env = {**os.environ, **variables}
    done = subprocess.run(
        ["docker", "stack", "deploy", "--compose-file", compose.name, stack],
        cwd=compose.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise DeployFailed(f"docker stack deploy failed: {' '.join(detail)}")
    return done.stdout


def wait(client: Any, stack: str, timeout: float) -> list[stackstate.Service]:
    """Wait until every service is well (``report.converged``); NotConverged after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        services = stackstate.collect(client, stack)
        if report.converged(services):
            return services
        if time.monotonic() >= deadline:
            waiting = [
                f"{s.name} ({'; '.join(report.service_problems(s))})"
                for s in services
                if report.service_problems(s)
            ]
            raise NotConverged(f"not converged after {timeout:g}s: {', '.join(waiting)}")
        time.sleep(_POLL_S)
