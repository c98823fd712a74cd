"""The agent in NATS mode: heartbeats land in stream HEARTBEATS of a real nats-server."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from vaultmesh.services.agent.config import AgentSettings
from vaultmesh.services.agent.daemon import Agent
from vaultmesh.services.agent.service import build_for
from vaultmesh.shared import bus, streams, subjects
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.models.heartbeat import Heartbeat
from vaultmesh.shared.natsserver import NatsServer, free_port


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VAULTMESH_") or key in ("LOG_LEVEL", "RUST_LOG"):
            monkeypatch.delenv(key)


def agent_for(nats_url: str, tmp_path: Path, **extra: Any) -> Agent:
    settings = AgentSettings.model_validate(
        {
            "nats_url": nats_url,
            "state_dir": tmp_path / "state",
            "root": tmp_path,
            "heartbeat_secs": 5,
            "hostname": "nats-node",
            "nats_connect_attempts": 1,
            "nats_reconnect_wait": 0.1,
            "nats_connect_timeout": 0.5,
            **extra,
        }
    )
    assert settings.uses_nats
    return build_for(settings)


async def test_heartbeat_is_stored_in_the_heartbeats_stream(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await streams.ensure_stream(js, streams.heartbeats_config(streams.StreamLimits()))
    agent = agent_for(nats_server.url, tmp_path)
    try:
        assert await agent.beat() is True
        assert await agent.beat() is True
    finally:
        await agent.stop()
    subject = subjects.heartbeat(agent.identity.node_id)
    stored = await js.get_last_msg(subjects.STREAM_HEARTBEATS, subject)
    heartbeat = Heartbeat.model_validate_json(stored.data or b"")
    assert heartbeat.node_id == agent.identity.node_id
    assert heartbeat.hostname == "nats-node"
    assert heartbeat.interval_s == 5
    info = await js.stream_info(subjects.STREAM_HEARTBEATS, subjects_filter=subject)
    assert info.state.subjects == {subject: 2}


async def test_without_a_stream_the_failure_is_explained(
    nc: Client, nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(subjects.STREAM_HEARTBEATS)
    agent = agent_for(nats_server.url, tmp_path)
    with caplog.at_level(logging.WARNING):
        assert await agent.beat() is False
    await agent.stop()
    [record] = [r for r in caplog.records if r.getMessage().startswith("heartbeat not delivered")]
    assert "no JetStream stream stores" in record.__dict__["reason"]


async def test_dead_server_is_a_failure_then_recovers_when_it_comes_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    agent = agent_for(f"nats://127.0.0.1:{port}", tmp_path)
    with caplog.at_level(logging.WARNING):
        assert await agent.beat() is False
    [record] = [r for r in caplog.records if r.getMessage().startswith("heartbeat not delivered")]
    assert "cannot connect to NATS" in record.__dict__["reason"]
    with NatsServer(data_dir=tmp_path / "nats", port=port) as server:
        client = await bus.connect(BusSettings(nats_url=server.url), "test")
        try:
            limits = streams.StreamLimits()
            await streams.ensure_stream(client.jetstream(), streams.heartbeats_config(limits))
            assert await agent.beat() is True
        finally:
            await agent.stop()
            await bus.close(client)
