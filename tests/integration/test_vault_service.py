"""The vault over a real nats-server with real users and permissions, on both backends."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nats.aio.client import Client

from tests.integration.test_vault_helpers import (  # noqa: F401 (fixtures)
    AuthNats,
    audit_records,
    auth_nats,
    drop_vault_bucket,
    eventually,
    raw_request,
    running_vault,
    vault_settings,
)
from vaultmesh.services.vault import kv_store, masterkey
from vaultmesh.services.vault.service import VaultComponent
from vaultmesh.shared import bus, codec, subjects
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.errors import Conflict, Forbidden, NotFound, Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.audit import AuditRecord

Vault = tuple[VaultComponent, ServiceMetrics, Client]


@pytest.fixture(params=["sqlite", "kv"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs against both storage backends."""
    return str(request.param)


@pytest.fixture
async def vault(
    auth_nats: AuthNats,  # noqa: F811
    data_dir: Path,
    backend: str,
) -> AsyncIterator[Vault]:
    """A running vault on ``backend``."""
    settings = vault_settings(
        auth_nats, data_dir, vault_backend=backend, vault_max_value_bytes=4096
    )
    async with running_vault(auth_nats, settings) as running:
        yield running
    if backend == "kv":
        await drop_vault_bucket(auth_nats)


@pytest.fixture
async def admin(auth_nats: AuthNats) -> AsyncIterator[Client]:  # noqa: F811
    """The operator CLI's identity."""
    nc = await auth_nats.connect("admin")
    yield nc
    await bus.close(nc)


@pytest.fixture
async def bob(auth_nats: AuthNats) -> AsyncIterator[Client]:  # noqa: F811
    """A principal with a narrow ACL."""
    nc = await auth_nats.connect("bob")
    yield nc
    await bus.close(nc)


async def call(nc: Client, principal: str, op: str, payload: Any = None) -> Any:
    """A native vault request; returns the data or raises the typed error."""
    return await bus.request(nc, subjects.vault(principal, op), payload or {})


async def test_each_operation(vault: Vault, admin: Client, backend: str) -> None:
    stored = await call(admin, "admin", "set", {"key": "app/db/password", "value": "hunter2"})
    assert stored["version"] == 1
    got = await call(admin, "admin", "get", {"key": "app/db/password"})
    assert got["value"] == "hunter2"
    assert got["current_version"] == 1
    assert got["created"] == got["updated"]
    await call(admin, "admin", "set", {"key": "app/api/token", "value": "t"})
    await call(admin, "admin", "set", {"key": "other/x", "value": "y"})
    listed = await call(admin, "admin", "list", {"prefix": "app/"})
    assert listed["keys"] == ["app/api/token", "app/db/password"]
    deleted = await call(admin, "admin", "delete", {"key": "app/api/token"})
    assert deleted == {"key": "app/api/token", "deleted": True, "version": 1}
    with pytest.raises(NotFound):
        await call(admin, "admin", "get", {"key": "app/api/token"})
    rotated = await call(admin, "admin", "rotate")
    assert rotated["key_term"] == 2
    status = await call(admin, "admin", "status")
    assert status["backend"] == ("sqlite" if backend == "sqlite" else "jetstream-kv")
    assert status["key_term"] == 2
    assert status["secrets"] == 2
    assert {"state", "total", "done"} <= set(status["rewrap"])
    assert status["uptime_s"] >= 0


async def test_versions_and_check_and_set(vault: Vault, admin: Client) -> None:
    await call(admin, "admin", "set", {"key": "v/k", "value": "one", "cas": 0})
    with pytest.raises(Conflict, match="exists"):
        await call(admin, "admin", "set", {"key": "v/k", "value": "x", "cas": 0})
    await call(admin, "admin", "set", {"key": "v/k", "value": "two", "cas": 1})
    with pytest.raises(Conflict, match="expected version 1"):
        await call(admin, "admin", "set", {"key": "v/k", "value": "x", "cas": 1})
    got = await call(admin, "admin", "get", {"key": "v/k", "version": 1})
    assert (got["value"], got["version"], got["current_version"]) == ("one", 1, 2)
    assert got["versions"] == [1, 2]
    with pytest.raises(Conflict):
        await call(admin, "admin", "delete", {"key": "v/k", "cas": 1})
    assert (await call(admin, "admin", "get", {"key": "v/k"}))["value"] == "two"


async def test_concurrent_check_and_set_has_one_winner(vault: Vault, admin: Client) -> None:
    await call(admin, "admin", "set", {"key": "race", "value": "0"})
    results = await asyncio.gather(
        *(
            call(admin, "admin", "set", {"key": "race", "value": str(n), "cas": 1})
            for n in range(8)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict))


async def test_the_seed_message_form(vault: Vault, admin: Client, bob: Client) -> None:
    seed = b'{"operation": "set", "key": "mysecret", "value": "secretvalue"}'
    assert await raw_request(admin, "vault.admin.requests", seed) == {
        "status": "success",
        "data": None,
    }
    get = msgpack.packb({"operation": "get", "key": "mysecret", "subject": "admin.requests"})
    reply = await raw_request(admin, "vault.admin.requests", get, codec.WireFormat.MSGPACK)
    assert reply == {"status": "success", "data": "secretvalue"}
    listed = await raw_request(admin, "vault.admin.requests", b'{"operation": "list"}')
    assert listed["data"] == ["mysecret"]
    # The body's `subject` cannot borrow admin's rights: bob is still bob.
    spoof = b'{"operation": "get", "key": "mysecret", "subject": "admin.requests"}'
    denied = await raw_request(bob, "vault.bob.requests", spoof)
    assert denied["status"] == "error"
    assert denied["message"] == "Access denied"


async def test_acl_allow_and_deny(vault: Vault, admin: Client, bob: Client) -> None:
    await call(admin, "admin", "set", {"key": "shared/motd", "value": "hello"})
    await call(admin, "admin", "set", {"key": "admin/only", "value": "root"})
    await call(bob, "bob", "set", {"key": "bob/token", "value": "b"})
    assert (await call(bob, "bob", "get", {"key": "shared/motd"}))["value"] == "hello"
    for op, payload in [
        ("get", {"key": "admin/only"}),
        ("set", {"key": "shared/motd", "value": "defaced"}),  # deny wins
        ("delete", {"key": "shared/motd"}),
        ("rotate", {}),
        ("get", {"key": "no/such/key"}),  # denied before existence is revealed
    ]:
        with pytest.raises(Forbidden, match=r"^Access denied$"):
            await call(bob, "bob", op, payload)
    listed = await call(bob, "bob", "list")
    assert listed["keys"] == ["bob/token", "shared/motd"]
    assert (await call(admin, "admin", "get", {"key": "shared/motd"}))["value"] == "hello"


async def test_another_principals_subject_is_refused_by_the_server(
    vault: Vault,
    auth_nats: AuthNats,  # noqa: F811
) -> None:
    _component, metrics, _nc = vault
    errors: list[Exception] = []

    async def collect(exc: Exception) -> None:
        errors.append(exc)

    bob = await auth_nats.connect("bob", error_cb=collect)
    try:
        before = _handled(metrics)
        with pytest.raises(Unavailable, match="no reply"):
            await bus.request(bob, subjects.vault("admin", "get"), {"key": "x"}, timeout=1)
        await bob.subscribe(subjects.VAULT_ALL)  # and it cannot pose as the vault either
        await bob.flush()
        await eventually(lambda: _async(len(errors) >= 2), timeout=10)
    finally:
        await bus.close(bob)
    text = " ".join(str(e) for e in errors)
    assert 'permissions violation for publish to "vault.admin.get"' in text.lower()
    assert 'permissions violation for subscription to "vault.*.*"' in text.lower()
    assert _handled(metrics) == before  # the vault never saw the request


async def _async(value: bool) -> bool:
    return value


def _handled(metrics: ServiceMetrics) -> float:
    total = 0.0
    for family in metrics.registry.collect():
        if family.name == "vaultmesh_requests":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


@pytest.mark.parametrize(
    ("subject", "body", "fmt", "code"),
    [
        ("vault.admin.get", b"{not json", codec.WireFormat.JSON, "bad_request"),
        ("vault.admin.get", b"\xc1\xc1", codec.WireFormat.MSGPACK, "bad_request"),
        ("vault.admin.get", b'{"key": 42}', codec.WireFormat.JSON, "bad_request"),
        ("vault.admin.get", b'{"key": ""}', codec.WireFormat.JSON, "bad_request"),
        ("vault.admin.set", b'{"key": "k", "value": ["x"]}', codec.WireFormat.JSON, "bad_request"),
        ("vault.admin.get", b"[1, 2]", codec.WireFormat.JSON, "bad_request"),
        ("vault.admin.frobnicate", b"{}", codec.WireFormat.JSON, "unknown_operation"),
        ("vault.admin.requests", b'{"operation": "x"}', codec.WireFormat.JSON, "unknown_operation"),
        (
            "vault.admin.set",
            b'{"key": "k", "value": "' + b"v" * 5000 + b'"}',
            codec.WireFormat.JSON,
            "payload_too_large",
        ),
    ],
)
async def test_bad_input_gets_a_clear_error_and_the_service_stays_up(
    vault: Vault, admin: Client, subject: str, body: bytes, fmt: codec.WireFormat, code: str
) -> None:
    _component, metrics, _nc = vault
    await call(admin, "admin", "set", {"key": "k", "value": "intact"})
    reply = await raw_request(admin, subject, body, fmt)
    assert reply["status"] == "error"
    assert reply["code"] == code
    assert reply["message"]
    assert (await call(admin, "admin", "get", {"key": "k"}))["value"] == "intact"
    samples = [
        s.value
        for family in metrics.registry.collect()
        if family.name == "vaultmesh_bad_input"
        for s in family.samples
        if s.labels.get("code") == code and s.name.endswith("_total")
    ]
    assert sum(samples) == 1


async def test_a_tampered_record_fails_alone(vault: Vault, admin: Client, backend: str) -> None:
    component, _metrics, nc = vault
    await call(admin, "admin", "set", {"key": "t/victim", "value": "v"})
    await call(admin, "admin", "set", {"key": "t/bystander", "value": "safe"})
    if backend == "sqlite":
        _tamper_sqlite(component, "t/victim")
    else:
        await _tamper_kv(nc, "t/victim")
    reply = await raw_request(admin, "vault.admin.get", b'{"key": "t/victim"}')
    assert reply["code"] == "integrity"
    assert "v" not in reply["message"].split()
    assert (await call(admin, "admin", "get", {"key": "t/bystander"}))["value"] == "safe"


def _tamper_sqlite(component: VaultComponent, path: str) -> None:
    db_file = component.vault.store._path  # type: ignore[attr-defined]
    with sqlite3.connect(db_file) as con:
        (ct,) = con.execute("SELECT ciphertext FROM versions WHERE path = ?", (path,)).fetchone()
        con.execute(
            "UPDATE versions SET ciphertext = ? WHERE path = ?",
            (bytes([ct[0] ^ 0xFF]) + ct[1:], path),
        )


async def _tamper_kv(nc: Client, path: str) -> None:
    kv = await nc.jetstream().key_value(subjects.KV_VAULT)
    entry = await kv.get(kv_store._key(path))
    assert entry.value is not None
    doc = msgpack.unpackb(entry.value)
    ct = doc["versions"][0][4]
    doc["versions"][0][4] = bytes([ct[0] ^ 0xFF]) + ct[1:]
    await kv.put(kv_store._key(path), msgpack.packb(doc, use_bin_type=True))


async def test_audit_records(
    vault: Vault,
    admin: Client,
    bob: Client,
    auth_nats: AuthNats,  # noqa: F811
) -> None:
    component, _metrics, _nc = vault
    key = f"audit/{id(component)}"
    await call(admin, "admin", "set", {"key": key, "value": "audit-secret-value"})
    await call(admin, "admin", "get", {"key": key})
    with pytest.raises(Forbidden):
        await call(bob, "bob", "get", {"key": key})
    digest = component.audit.key_hmac(key)
    records = await audit_records(auth_nats, lambda r: r.get("key_hmac") == digest, 3)
    assert [(r["principal"], r["action"], r["outcome"]) for r in records] == [
        ("admin", "set", "allowed"),
        ("admin", "get", "allowed"),
        ("bob", "get", "denied"),
    ]
    for record in records:
        raw = record.pop("_raw")
        assert key.encode() not in raw
        assert b"audit-secret-value" not in raw
        parsed = AuditRecord.model_validate(record)
        assert parsed.service == "vault"
        assert parsed.latency_ms is not None
    assert records[2]["code"] == "forbidden"
    assert records[2]["severity"] == "warning"
    # Each record has its own id, so a copy stored twice after a lost ack is recognisable.
    ids = [record["id"] for record in records]
    assert all(isinstance(rid, str) and rid for rid in ids)
    assert len(set(ids)) == len(ids)


async def test_rotation_while_reading_and_writing(vault: Vault, admin: Client) -> None:
    component, _metrics, _nc = vault
    keys = [f"rot/{n}" for n in range(20)]
    latest = dict.fromkeys(keys, 0)
    for key in keys:
        await call(admin, "admin", "set", {"key": key, "value": f"{key}#0"})
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = keys[n % len(keys)]
            await call(admin, "admin", "set", {"key": key, "value": f"{key}#{n}"})
            latest[key] = n

    async def reader() -> int:
        reads = 0
        while not stop.is_set():
            for key in keys:
                value = (await call(admin, "admin", "get", {"key": key}))["value"]
                assert value.startswith(f"{key}#")
                reads += 1
        return reads

    tasks = [asyncio.create_task(writer()), *(asyncio.create_task(reader()) for _ in range(3))]
    for _ in range(3):
        await asyncio.sleep(0.2)
        await call(admin, "admin", "rotate")
    await asyncio.sleep(0.2)
    stop.set()
    results = await asyncio.gather(*tasks)
    assert sum(r for r in results if r) > 0
    for key in keys:
        assert (await call(admin, "admin", "get", {"key": key}))["value"] == f"{key}#{latest[key]}"

    async def rewrapped() -> bool:
        status = await call(admin, "admin", "status")
        rewrap = status["rewrap"]
        return bool(rewrap["state"] == "done" and rewrap["target_term"] == status["key_term"])

    await eventually(rewrapped)
    assert await component.vault.store.stale_paths(component.vault.keyring.active) == []
    status = await call(admin, "admin", "status")
    assert status["key_term"] == 4
    assert status["rewrap"]["done"] == status["rewrap"]["total"]


async def test_restart_keeps_data(
    auth_nats: AuthNats,  # noqa: F811
    data_dir: Path,
    backend: str,
    admin: Client,
) -> None:
    settings = vault_settings(auth_nats, data_dir, vault_backend=backend)
    try:
        async with running_vault(auth_nats, settings):
            await call(admin, "admin", "set", {"key": "keep/me", "value": "v1"})
            await call(admin, "admin", "set", {"key": "keep/me", "value": "v2"})
            await call(admin, "admin", "rotate")
        async with running_vault(auth_nats, settings):
            got = await call(admin, "admin", "get", {"key": "keep/me", "version": 1})
            assert got["value"] == "v1"
            assert got["current_version"] == 2
            assert (await call(admin, "admin", "status"))["key_term"] == 2
    finally:
        if backend == "kv":
            await drop_vault_bucket(auth_nats)


async def test_changing_the_master_key_keeps_every_secret_and_key_hmac(
    auth_nats: AuthNats,  # noqa: F811
    data_dir: Path,
    backend: str,
    admin: Client,
) -> None:
    old_key = data_dir / "master.key"
    settings = vault_settings(auth_nats, data_dir, vault_backend=backend)
    new_key = data_dir / "master-2.key"
    masterkey.write_new(new_key)
    key = f"rekey/{backend}/db"
    try:
        async with running_vault(auth_nats, settings) as (component, _, _):
            await call(admin, "admin", "set", {"key": key, "value": "v1"})
            await call(admin, "admin", "rotate")
            await call(admin, "admin", "set", {"key": key, "value": "v2"})
            hmac_before = component.audit.key_hmac(key)
            status = await call(admin, "admin", "status")
            assert status["previous_master_key"] == {"configured": False, "resealed_terms": 0}

        # The new key alone does not open what the old one sealed: a clear start error.
        alone = settings.model_copy(update={"vault_master_key_file": new_key})
        with pytest.raises(ConfigError, match="does not open key term 1"):
            async with running_vault(auth_nats, alone):
                pass

        # New key + previous key: both terms are sealed again under the new key.
        changing = alone.model_copy(update={"vault_previous_master_key_file": old_key})
        async with running_vault(auth_nats, changing) as (component, _, _):
            status = await call(admin, "admin", "status")
            assert status["previous_master_key"] == {"configured": True, "resealed_terms": 2}
            assert (await call(admin, "admin", "get", {"key": key, "version": 1}))["value"] == "v1"
            assert component.audit.key_hmac(key) == hmac_before

        # From now on the new key alone opens everything, and the old one nothing.
        async with running_vault(auth_nats, alone) as (component, _, _):
            assert (await call(admin, "admin", "get", {"key": key}))["value"] == "v2"
            assert (await call(admin, "admin", "get", {"key": key, "version": 1}))["value"] == "v1"
            await call(admin, "admin", "set", {"key": key, "value": "v3"})
            assert component.audit.key_hmac(key) == hmac_before
        found = await audit_records(
            auth_nats, lambda r: r.get("key_hmac") == hmac_before and r["action"] == "get", 3
        )
        assert len(found) >= 3  # records before and after the change name the key alike
        with pytest.raises(ConfigError, match="wrong master key"):
            async with running_vault(auth_nats, settings):
                pass
    finally:
        if backend == "kv":
            await drop_vault_bucket(auth_nats)


async def test_automatic_rotation_after_the_configured_encryptions(
    auth_nats: AuthNats,  # noqa: F811
    data_dir: Path,
    admin: Client,
) -> None:
    settings = vault_settings(auth_nats, data_dir, vault_rotate_after=5)
    async with running_vault(auth_nats, settings):
        for n in range(12):
            await call(admin, "admin", "set", {"key": f"auto/{n}", "value": "v"})
        assert (await call(admin, "admin", "status"))["key_term"] >= 3
        assert (await call(admin, "admin", "get", {"key": "auto/0"}))["value"] == "v"
