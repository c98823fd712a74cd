"""``vaultmesh provision``: create and tune every stream and KV bucket (the provisioning step).

Runs as the ``provisioner`` NATS identity, the only one allowed to administer
JetStream: from the environment (``VAULTMESH_NATS_*``, as the Swarm stack's
one-shot ``provision`` service does), else the local ``vaultmesh up`` data
directory. Stream limits follow the fleet-state variables
(``VAULTMESH_FLEET_HEARTBEAT_HISTORY``, ``VAULTMESH_FLEET_HEARTBEAT_MAX_AGE_S``) so the
stream's owner finds it as it would have made it. Waits up to ``--wait`` seconds
for NATS (a stack starts its parts in any order). Idempotent: run it again after an
upgrade to apply changed stream settings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from nats.errors import Error as NatsError

from vaultmesh.cli.connection import operator_settings
from vaultmesh.services.fleet.config import FleetSettings
from vaultmesh.shared import bus, natsauth, provision
from vaultmesh.shared.config import load_settings
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.streams import StreamLimits

_RETRY_S = 2.0


def register(sub: Any) -> None:
    """Add the `provision` command."""
    parser = sub.add_parser("provision", help="create and tune every stream and KV bucket")
    parser.add_argument("--replicas", type=int, default=1, help="replicas of each stream (1-5)")
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for NATS (default 120)"
    )
    parser.set_defaults(func=provision_command)


def provision_command(args: argparse.Namespace) -> int:
    """Run the provisioning step; 0 when every stream and bucket is in place."""
    if not 1 <= args.replicas <= 5:
        print("vaultmesh provision: --replicas must be 1 to 5", file=sys.stderr)
        return 2
    try:
        done = asyncio.run(_provision(args.replicas, args.wait))
    except (Unavailable, NatsError, TimeoutError) as exc:
        print(f"vaultmesh provision: {_describe(exc)}", file=sys.stderr)
        return 1
    print(f"provisioned ({done.summary()})")
    return 0


def limits(replicas: int) -> StreamLimits:
    """The stream limits: replicas from the command line, history from fleet-state's settings."""
    fleet = load_settings(FleetSettings)
    return StreamLimits(
        replicas=replicas,
        heartbeat_history=fleet.fleet_heartbeat_history,
        heartbeat_max_age_s=fleet.fleet_heartbeat_max_age_s,
    )


async def _provision(replicas: int, wait_s: float) -> provision.Provisioned:
    settings = operator_settings(identity=natsauth.PROVISIONER)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            nc = await bus.connect(settings, "vaultmesh-provision")
            break
        except Unavailable:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(_RETRY_S)
    try:
        return await provision.provision(nc, limits(replicas))
    finally:
        await bus.close(nc)


def _describe(exc: Exception) -> str:
    if isinstance(exc, Unavailable):
        return str(exc)
    return f"JetStream refused or did not answer: {type(exc).__name__}"
