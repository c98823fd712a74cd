"""Fixtures shared by every test: a real nats-server with JetStream, and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from vaultmesh.shared import bus
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.natsserver import NatsServer


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a random port, one per test module."""
    server = NatsServer(data_dir=tmp_path_factory.mktemp("nats"))
    with server:
        yield server


@pytest.fixture
def bus_settings(nats_server: NatsServer) -> BusSettings:
    """Bus settings pointing at the module's nats-server."""
    return BusSettings(nats_url=nats_server.url)


@pytest.fixture
async def nc(bus_settings: BusSettings) -> AsyncIterator[Client]:
    """A connected client, drained after the test."""
    client = await bus.connect(bus_settings, "test-client")
    yield client
    await bus.close(client)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data directory for one test."""
    path = tmp_path / "data"
    path.mkdir()
    return path
