"""natsauth: persisted identities and least-privilege permissions a real server enforces."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from vaultmesh.shared import natsauth
from vaultmesh.shared.errors import Unavailable
from vaultmesh.shared.natsserver import NatsServer


def test_identities_are_persisted_privately_and_stable(tmp_path: Path) -> None:
    first = natsauth.load_or_create(tmp_path / "auth", ["ai-1"])
    path = tmp_path / "auth" / natsauth.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first) == {*natsauth.BUILTIN, "ai-1"}
    again = natsauth.load_or_create(tmp_path / "auth", ["ai-1", "ai-2"])
    assert again["vault"].password == first["vault"].password
    assert again["ai-2"].password not in {i.password for i in first.values()}
    assert len({i.password for i in again.values()}) == len(again)
    path.chmod(0o644)
    natsauth.load_or_create(tmp_path / "auth")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["vault"].password not in repr(first)
    assert natsauth.identity_env(first["vault"]) == {
        "VAULTMESH_NATS_USER": "vault",
        "VAULTMESH_NATS_PASSWORD": first["vault"].password,
    }


@pytest.mark.parametrize("bad", ["a.b", "*", "", "x y"])
def test_principal_names_are_single_tokens(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        natsauth.load_or_create(tmp_path, [bad])


def test_a_corrupt_identities_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / natsauth.FILE_NAME).write_text(json.dumps({"vault": 5}))
    with pytest.raises(ValueError, match="map identity names"):
        natsauth.load_or_create(tmp_path)


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, natsauth.Identity]:
    return natsauth.load_or_create(tmp_path_factory.mktemp("ids"), ["ai-agent", "bob"])


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, identities: dict[str, natsauth.Identity]
) -> Iterator[NatsServer]:
    config = natsauth.server_config(identities)
    with NatsServer(tmp_path_factory.mktemp("nats"), extra_config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
def private_server(
    tmp_path_factory: pytest.TempPathFactory, identities: dict[str, natsauth.Identity]
) -> Iterator[NatsServer]:
    config = natsauth.server_config(identities, private_inboxes=True)
    with NatsServer(tmp_path_factory.mktemp("nats"), extra_config=config) as srv:
        yield srv


class Probe:
    """A connection that records the server's permission errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def connect(
        self, url: str, ident: natsauth.Identity, inbox_prefix: str = "_INBOX"
    ) -> Probe:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc).lower())

        self.nc = await nats.connect(
            servers=[url],
            user=ident.name,
            password=ident.password,
            error_cb=on_error,
            inbox_prefix=inbox_prefix,
            max_reconnect_attempts=1,
        )
        return self

    async def denied(self, action: str, subject: str) -> bool:
        """Whether publishing/subscribing on ``subject`` is refused by the server."""
        assert self.nc is not None
        if action == "publish":
            await self.nc.publish(subject, b"x")
        else:
            await self.nc.subscribe(subject)
        await self.nc.flush()
        word = "publish" if action == "publish" else "subscription"
        needle = f'permissions violation for {word} to "{subject}"'.lower()
        for _ in range(20):  # the -ERR arrives asynchronously after the flush
            if any(needle in e for e in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False

    async def close(self) -> None:
        assert self.nc is not None
        await self.nc.close()


@pytest.mark.parametrize(
    ("name", "action", "subject", "refused"),
    [
        ("ai-agent", "publish", "vault.ai-agent.get", False),
        ("ai-agent", "publish", "vault.bob.get", True),
        ("ai-agent", "publish", "fleet.heartbeat.n1", True),
        ("ai-agent", "subscribe", "vault.*.*", True),
        ("ai-agent", "subscribe", "fleet.heartbeat.*", True),
        ("agent", "publish", "fleet.heartbeat.n1", False),
        ("agent", "publish", "vault.agent.get", True),
        ("agent", "publish", "fleet.event.note._", True),
        # Until per-node keys: no identity shared by all agents reads commands or sends receipts.
        ("agent", "publish", "fleet.receipt.n1", True),
        ("agent", "subscribe", "fleet.cmd.n1", True),
        ("fleet", "publish", "fleet.cmd.n1", True),
        ("vault", "subscribe", "vault.*.*", False),
        ("vault", "publish", "audit.vault.get", False),
        ("vault", "publish", "audit.fleet.get", True),
        ("vault", "publish", "fleet.heartbeat.n1", True),
        ("vault", "publish", "$JS.API.STREAM.DELETE.HEARTBEATS", True),
        ("admin", "publish", "vault.admin.get", False),
        ("admin", "publish", "vault.bob.get", True),
        ("gateway", "publish", "fleet.heartbeat.n1", False),
        ("gateway", "publish", "vault.gateway.get", True),
        ("scheduler", "publish", "vault.scheduler.rotate", False),
        ("scheduler", "publish", "vault.scheduler.get", True),
        ("logger", "subscribe", "logs.query", False),
        ("logger", "publish", "vault.logger.get", True),
    ],
)
async def test_the_server_enforces_least_privilege(
    server: NatsServer,
    identities: dict[str, natsauth.Identity],
    name: str,
    action: str,
    subject: str,
    refused: bool,
) -> None:
    probe = await Probe().connect(server.url, identities[name])
    try:
        assert await probe.denied(action, subject) is refused
    finally:
        await probe.close()


@pytest.mark.parametrize("user", ["vault", "nobody"])
def test_a_wrong_password_is_refused(
    server: NatsServer, identities: dict[str, natsauth.Identity], user: str
) -> None:
    # Speak the protocol directly: a failed nats-py connect leaks its socket.
    connect = {"user": user, "pass": identities["bob"].password, "verbose": False}
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.recv(4096)  # INFO
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        reply = sock.recv(4096)
    assert b"Authorization Violation" in reply


async def test_private_inboxes_keep_replies_private(
    private_server: NatsServer, identities: dict[str, natsauth.Identity]
) -> None:
    bob = await Probe().connect(private_server.url, identities["bob"], natsauth.inbox_prefix("bob"))
    try:
        assert not await bob.denied("subscribe", f"{natsauth.inbox_prefix('bob')}.>")
        assert await bob.denied("subscribe", "_INBOX.>")
        assert await bob.denied("subscribe", f"{natsauth.inbox_prefix('ai-agent')}.>")
    finally:
        await bob.close()


def test_unavailable_is_the_shared_error_for_a_dead_bus() -> None:
    assert Unavailable("x").code == "unavailable"
