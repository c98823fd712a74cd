"""Shared fixtures and helpers of the vault integration tests (this module has no tests).

Every vault test runs against a real nats-server whose users and permissions
come from ``vaultmesh.shared.natsauth``: the vault, the admin CLI, and the
principals below, each confined by the server to its own ``vault.<p>.>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError
from nats.micro.service import ServiceVerb, control_subject

from vaultmesh.services.vault import masterkey
from vaultmesh.services.vault.config import VaultSettings
from vaultmesh.services.vault.service import VaultComponent, build_for
from vaultmesh.shared import bus, codec, natsauth, provision, subjects
from vaultmesh.shared.config import BusSettings
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.natsserver import NatsServer
from vaultmesh.shared.streams import StreamLimits

PRINCIPALS = ("bob", "user", "ai-agent")
TEST_ACL = """
acl:
  - principal: admin
    operations: ["*"]
  - subject: user.requests          # the seed's example
    operations: [get, set]
  - principal: bob
    operations: [get, set, delete, list, status]
    keys: ["bob/**", "shared/*"]
  - principal: bob
    effect: deny
    operations: [set, delete]
    keys: ["shared/*"]
"""


class AuthNats:
    """A nats-server with the natsauth users, and a way to connect as any of them."""

    def __init__(self, server: NatsServer, identities: dict[str, natsauth.Identity]) -> None:
        self.server = server
        self.identities = identities

    def settings(self, name: str) -> BusSettings:
        """Bus settings for identity ``name``."""
        ident = self.identities[name]
        return BusSettings(
            nats_url=self.server.url, nats_user=ident.name, nats_password=ident.password
        )

    def env(self, name: str) -> dict[str, str]:
        """Process environment for identity ``name``."""
        return {
            "VAULTMESH_NATS_URL": self.server.url,
            **natsauth.identity_env(self.identities[name]),
        }

    async def connect(
        self, name: str, error_cb: Callable[[Exception], Awaitable[None]] | None = None
    ) -> Client:
        """A client connected as ``name`` (``error_cb`` sees server errors, e.g. permissions)."""
        if error_cb is None:
            return await bus.connect(self.settings(name), f"test-{name}")
        ident = self.identities[name]
        return await nats.connect(
            servers=[self.server.url],
            user=ident.name,
            password=ident.password,
            error_cb=error_cb,
            max_reconnect_attempts=1,
        )


@pytest.fixture(scope="module")
def auth_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthNats]:
    """A real nats-server enforcing the generated per-identity permissions."""
    identities = natsauth.load_or_create(tmp_path_factory.mktemp("auth"), PRINCIPALS)
    server = NatsServer(
        data_dir=tmp_path_factory.mktemp("nats"),
        extra_config=natsauth.server_config(identities),
    )
    with server:
        auth = AuthNats(server, identities)
        asyncio.run(provision_all(auth))
        yield auth


async def provision_all(auth: AuthNats) -> None:
    """The provisioning step: only the provisioner may create streams and buckets."""
    nc = await auth.connect(natsauth.PROVISIONER)
    try:
        await provision.provision(nc, StreamLimits())
    finally:
        await bus.close(nc)


def vault_settings(auth: AuthNats, data_dir: Path, **overrides: Any) -> VaultSettings:
    """Settings for a vault in ``data_dir`` (master key and ACL files created once)."""
    key, acl = data_dir / "master.key", data_dir / "acl.yaml"
    if not key.exists():
        masterkey.write_new(key)
    if not acl.exists():
        acl.write_text(TEST_ACL, encoding="utf-8")
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "vault_master_key_file": key,
        "vault_acl_file": acl,
        "nats_url": auth.server.url,
        "nats_user": "vault",
        "nats_password": auth.identities["vault"].password,
        **overrides,
    }
    return VaultSettings(**values)


@contextlib.asynccontextmanager
async def running_vault(
    auth: AuthNats, settings: VaultSettings
) -> AsyncIterator[tuple[VaultComponent, ServiceMetrics, Client]]:
    """A started vault connected as the ``vault`` identity; stopped afterwards."""
    nc = await bus.connect(settings, "vault")
    metrics = ServiceMetrics("vault")
    try:
        component = await build_for(settings)(nc, metrics)
        await component.start()
    except BaseException:
        await bus.close(nc)
        raise
    try:
        await answering(auth, subjects.SERVICE_VAULT)
        yield component, metrics, nc
    finally:
        await component.stop()
        await bus.close(nc)


async def answering(auth: AuthNats, service: str, timeout: float = 10.0) -> None:
    """Wait until ``service`` answers ``$SRV.PING`` from another identity (as ``vaultmesh up``
    does before it reports ready), so a test never races the service's subscriptions."""
    nc = await auth.connect("admin")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await nc.request(control_subject(ServiceVerb.PING, service), b"", timeout=0.5)
                return
            except (NatsError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
    finally:
        await bus.close(nc)


async def drop_vault_bucket(auth: AuthNats) -> None:
    """Delete the KV bucket and provision it again, so the next KV test starts empty."""
    nc = await auth.connect(natsauth.PROVISIONER)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_key_value(subjects.KV_VAULT)
    finally:
        await bus.close(nc)
    await provision_all(auth)


async def raw_request(
    nc: Client, subject: str, body: bytes, fmt: codec.WireFormat = codec.WireFormat.JSON
) -> Any:
    """Send raw bytes; return the decoded reply envelope."""
    msg = await nc.request(subject, body, timeout=5, headers={codec.CONTENT_TYPE: fmt.content_type})
    return codec.decode(msg.data, codec.format_of(msg.headers))


async def audit_records(
    auth: AuthNats, match: Callable[[dict[str, Any]], bool], count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """Wait until ``count`` records in stream AUDIT satisfy ``match``; return them (raw dicts)."""
    nc = await auth.connect(natsauth.PROVISIONER)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            found = await _scan_audit(js, match)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)
    finally:
        await bus.close(nc)


async def _scan_audit(js: Any, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    try:
        # No acks: an acking consumer stops at 1000 unacknowledged messages (max_ack_pending).
        sub = await js.pull_subscribe(
            subjects.audit_of("vault"),
            stream=subjects.STREAM_AUDIT,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE),
        )
    except (NatsError, NotFoundError):
        return []
    found = []
    try:
        while True:
            try:
                batch = await sub.fetch(1000, timeout=0.5)
            except (NatsError, TimeoutError):
                # A slow fetch on a busy machine is not the end of the stream.
                if (await sub.consumer_info()).num_pending:
                    continue
                break
            for msg in batch:
                record = orjson.loads(msg.data)
                record["_raw"] = msg.data
                if match(record):
                    found.append(record)
    finally:
        await sub.unsubscribe()
    return found


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    """Wait (polling) until ``check`` is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.05)
