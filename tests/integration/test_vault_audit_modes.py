"""Audit modes: fail-closed refuses what it cannot audit; best effort catches up later."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from tests.integration.test_vault_helpers import (  # noqa: F401 (fixtures)
    AuthNats,
    audit_records,
    auth_nats,
    eventually,
    running_vault,
    vault_settings,
)
from vaultmesh.services.vault.audit import AuditEntry, AuditTrail
from vaultmesh.shared import bus, natsauth, subjects
from vaultmesh.shared.errors import Forbidden, Unavailable
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.models.audit import Outcome
from vaultmesh.shared.streams import StreamLimits, audit_config, ensure_stream


@pytest.fixture
async def admin(auth_nats: AuthNats) -> AsyncIterator[Client]:  # noqa: F811
    nc = await auth_nats.connect("admin")
    yield nc
    await bus.close(nc)


@contextlib.asynccontextmanager
async def audit_stream_gone(auth: AuthNats) -> AsyncIterator[None]:
    """Delete stream AUDIT for the duration (as the provisioner, who may manage it)."""
    nc = await auth.connect(natsauth.PROVISIONER)
    js = nc.jetstream()
    try:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(subjects.STREAM_AUDIT)
        yield
    finally:
        await ensure_stream(js, audit_config(StreamLimits()))
        await bus.close(nc)


async def call(nc: Client, principal: str, op: str, payload: dict[str, object]) -> object:
    return await bus.request(nc, subjects.vault(principal, op), payload)


async def test_fail_closed_refuses_what_it_cannot_audit(
    auth_nats: AuthNats,  # noqa: F811
    data_dir: Path,
    admin: Client,
) -> None:
    settings = vault_settings(
        auth_nats, data_dir, vault_audit_fail_closed=True, vault_audit_timeout=0.5
    )
    async with running_vault(auth_nats, settings) as (component, _metrics, _nc):
        await call(admin, "admin", "set", {"key": "fc/k", "value": "before"})
        async with audit_stream_gone(auth_nats):
            with pytest.raises(Unavailable, match="audit"):
                await call(admin, "admin", "set", {"key": "fc/k", "value": "unaudited"})
            with pytest.raises(Unavailable, match="audit"):
                await call(admin, "admin", "get", {"key": "fc/k"})
            bob = await auth_nats.connect("bob")
            try:
                with pytest.raises(Forbidden, match="Access denied"):
                    await call(bob, "bob", "get", {"key": "fc/k"})
            finally:
                await bus.close(bob)
            stored = await component.vault.store.read("fc/k")
            assert stored is not None
            assert stored.current == 1  # the refused write changed nothing
        got = await call(admin, "admin", "get", {"key": "fc/k"})
        assert isinstance(got, dict)
        assert got["value"] == "before"
        digest = component.audit.key_hmac("fc/k")
        records = await audit_records(auth_nats, lambda r: r.get("key_hmac") == digest, 1)
        assert records[-1]["action"] == "get"


async def test_best_effort_answers_and_delivers_the_records_later(
    auth_nats: AuthNats,  # noqa: F811
    data_dir: Path,
    admin: Client,
) -> None:
    settings = vault_settings(auth_nats, data_dir, vault_audit_timeout=0.5)
    async with running_vault(auth_nats, settings) as (component, _metrics, _nc):
        digest = component.audit.key_hmac("be/k")
        async with audit_stream_gone(auth_nats):
            await call(admin, "admin", "set", {"key": "be/k", "value": "v"})
            got = await call(admin, "admin", "get", {"key": "be/k"})
            assert isinstance(got, dict)
            assert got["value"] == "v"
            assert component.audit.pending >= 1
        records = await audit_records(auth_nats, lambda r: r.get("key_hmac") == digest, 2)
        assert [r["action"] for r in records] == ["set", "get"]

        async def flushed() -> bool:
            return component.audit.pending == 0

        await eventually(flushed)


@contextlib.contextmanager
def server_paused(auth: AuthNats) -> Iterator[None]:
    """Stop the nats-server process (SIGSTOP) for the duration: what is sent waits unread."""
    pid = auth.server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        _wait_stopped(pid)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _wait_stopped(pid: int, timeout: float = 10.0) -> None:
    """Wait until every thread of ``pid`` has stopped. A thread busy on another CPU stops
    only when it next enters the kernel: until then the server still reads and answers
    (this was the flake: records sent right after SIGSTOP were acknowledged)."""
    deadline = time.monotonic() + timeout
    while not all(
        _thread_state(task) in ("T", "t") for task in Path(f"/proc/{pid}/task").iterdir()
    ):
        assert time.monotonic() < deadline, "nats-server did not stop"
        time.sleep(0.001)


def _thread_state(task: Path) -> str:
    try:
        stat = (task / "stat").read_text()
    except OSError:
        return "T"  # the thread is gone: it answers nothing
    return stat.rsplit(")", 1)[1].split()[0]


async def test_a_batch_resent_after_its_ack_was_lost_repeats_records_with_their_ids(
    auth_nats: AuthNats,  # noqa: F811
    data_dir: Path,
    admin: Client,
) -> None:
    # Delivery is at least once: a batch whose acknowledgement never came is sent
    # again, and whatever the server had stored is then stored twice -- with the same
    # record id, so a repeat is recognisable; nothing is lost.
    settings = vault_settings(auth_nats, data_dir, vault_audit_timeout=0.5)
    async with running_vault(auth_nats, settings) as (component, metrics, _nc):
        await call(admin, "admin", "status", {})  # connected and answering
        trail = component.audit
        # The status call's own record goes out after its reply: let it be acknowledged
        # first, so that every failed attempt counted below is one of the three records.
        await eventually(lambda: _settled(trail))
        digest = trail.key_hmac("lost/ack")
        with server_paused(auth_nats):
            for _ in range(3):
                trail.submit(
                    AuditEntry(datetime.now(UTC), "admin", "get", Outcome.ALLOWED, "lost/ack")
                )
            # Sent, never acknowledged: expired after the timeout, then sent again. Two
            # failed attempts of all three mean two sends of each sit in the paused server's
            # socket (waiting on a clock instead was the flake: a late resend went out after
            # the server resumed and acknowledged the first).
            await eventually(lambda: _retried(metrics, 6), timeout=30)
        await eventually(lambda: _settled(trail))
        records = await audit_records(auth_nats, lambda r: r.get("key_hmac") == digest, 6)
    copies = Counter(record["id"] for record in records)
    assert len(copies) == 3, copies  # every record stored
    assert min(copies.values()) >= 2, copies  # and the lost-ack batch stored again
    by_id: dict[str, set[bytes]] = {}
    for record in records:
        by_id.setdefault(record["id"], set()).add(record["_raw"])
    assert all(len(bodies) == 1 for bodies in by_id.values())  # the copies are identical


async def _retried(metrics: ServiceMetrics, count: int) -> bool:
    value = metrics.registry.get_sample_value(
        "vaultmesh_vault_audit_records_total", {"service": "vault", "result": "retried"}
    )
    return (value or 0.0) >= count


async def _settled(trail: AuditTrail) -> bool:
    return trail.pending == 0
