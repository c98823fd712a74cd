"""``python -m vaultmesh.services.fleet`` runs for real: serves, then drains on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from uuid import UUID, uuid4

from nats.aio.client import Client

from tests.integration.test_fleet_support import heartbeat, publish, wait_for
from vaultmesh.services.fleet import local
from vaultmesh.services.gateway.fleet_client import FleetClient
from vaultmesh.shared import subjects
from vaultmesh.shared.errors import NotFound, Unavailable
from vaultmesh.shared.natsserver import NatsServer

ROOT = Path(__file__).resolve().parents[2]


async def _answers(client: FleetClient, node: str | None = None) -> bool:
    try:
        if node is None:
            await client.counts()
        else:
            await client.get_node(UUID(node))
    except (Unavailable, NotFound):
        return False
    return True


async def test_module_main_serves_and_stops_on_sigterm(
    nats_server: NatsServer, nc: Client, data_dir: Path
) -> None:
    env = {
        **os.environ,
        "VAULTMESH_NATS_URL": nats_server.url,
        "VAULTMESH_DATA_DIR": str(data_dir),
        "LOG_LEVEL": "INFO",
        **local.local_env(data_dir),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultmesh.services.fleet"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        client = FleetClient(nc, timeout=2)
        await wait_for(lambda: _answers(client), timeout=60, what="fleet-state up")
        node = str(uuid4())
        await publish(nc, node, heartbeat(node))
        await wait_for(lambda: _answers(client, node), what="the heartbeat")
        ping = await nc.request(f"$SRV.PING.{local.MICRO_NAME}", b"", timeout=5)
        assert b'"name":"fleet"' in ping.data.replace(b" ", b"")
        assert local.MICRO_NAME == subjects.SERVICE_FLEET
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert b'"msg":"stopped"' in err
