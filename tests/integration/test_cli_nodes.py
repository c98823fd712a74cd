"""`vaultmesh nodes` as a real process, as the admin identity, against fleet-state as `fleet`.

The nats-server enforces the generated per-identity permissions (natsauth), so
this also shows the admin may list and delete nodes, and fleet-state may store
the tombstone, the event and the audit record with its own grants.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from uuid import uuid4

from tests.integration.test_fleet_removal import fleet_audit, known
from tests.integration.test_fleet_support import (
    clock_at,
    heartbeat,
    publish,
    running,
    settings_for,
    wait_for,
)
from tests.integration.test_vault_helpers import AuthNats, auth_nats
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared import natsauth

__all__ = ["auth_nats"]  # the module-scoped fixture, used below
ROOT = Path(__file__).resolve().parents[2]


async def cli(auth: AuthNats, *args: str) -> tuple[int, str, str]:
    """Run ``vaultmesh <args>`` as the admin identity; (exit code, stdout, stderr)."""
    env = {**os.environ, **auth.env("admin"), "VAULTMESH_LOCAL_DIR": str(ROOT / "absent")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vaultmesh.cli.main",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_admin_lists_and_deletes_a_node_from_the_command_line(
    auth_nats: AuthNats,
) -> None:
    fleet = auth_nats.identities["fleet"]
    settings = settings_for(
        auth_nats.server.url, nats_user=fleet.name, nats_password=fleet.password
    )
    node = str(uuid4())
    admin = await auth_nats.connect("admin")
    agent = await auth_nats.connect("gateway")  # may publish heartbeats into the stream
    try:
        async with running(settings, clock_at()) as service:
            await publish(agent, node, heartbeat(node, hostname="cli-victim"))
            await wait_for(lambda: service.registry.get(node) is not None, what="registration")

            code, out, _ = await cli(auth_nats, "nodes", "list", "--json")
            assert code == 0
            assert node in {n["node_id"] for n in json.loads(out)["nodes"]}

            code, out, err = await cli(auth_nats, "nodes", "delete", node)
            assert (code, err) == (0, "")
            assert out.startswith(f"deleted {node} (cli-victim")
            assert not await known(FleetClient(admin), node)

            code, _, err = await cli(auth_nats, "nodes", "delete", node)
            assert code == 4
            assert "no node" in err
            code, _, err = await cli(auth_nats, "nodes", "delete", "not-a-uuid")
            assert code == 2
            assert "not a node id" in err

            # Only the logger's durable consumer reads AUDIT; a test reads it as the provisioner.
            reader = await auth_nats.connect(natsauth.PROVISIONER)

            async def audited() -> bool:
                records = await fleet_audit(reader, "node_delete")
                return any(r["node_id"] == node and r["principal"] == "admin" for r in records)

            try:
                await wait_for(audited, what="the audit record naming the admin")
            finally:
                await reader.close()
    finally:
        await admin.close()
        await agent.close()
