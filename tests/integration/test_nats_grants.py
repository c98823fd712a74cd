"""Hostile probes against the generated NATS grants: JetStream as a capture and republish tool.

A permission to create a stream, or a consumer, is a permission to capture a
subject and deliver it somewhere else. Each test performs an attack of the
hostile-probe report against a real nats-server enforcing ``natsauth``'s grants,
as every service identity, and shows it refused by the server (or, for the
reflections the server cannot refuse, not acted on by the vault).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RePublish,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

from tests.integration.test_vault_helpers import (  # noqa: F401 (fixtures)
    AuthNats,
    auth_nats,
    eventually,
    running_vault,
    vault_settings,
)
from vaultmesh.shared import bus, natsauth, subjects
from vaultmesh.shared.errors import NotFound
from vaultmesh.shared.metrics import ServiceMetrics
from vaultmesh.shared.micro import REFUSED_REPLY

# Every identity a service process runs as (the provisioner is the one allowed to).
IDENTITIES = ("gateway", "fleet", "logger", "scheduler", "vault", "agent", "admin")
API_TIMEOUT = 2.0


class Probe:
    """A connection as one identity that records the server's permission errors."""

    def __init__(self, nc: Client, errors: list[str]) -> None:
        self.nc, self.errors = nc, errors
        self.js = nc.jetstream(timeout=API_TIMEOUT)

    async def refused(self, subject_word: str) -> bool:
        """True once the server reported a permissions violation naming ``subject_word``."""
        for _ in range(50):
            if any("permissions violation" in e and subject_word in e for e in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False


@contextlib.asynccontextmanager
async def probe(auth: AuthNats, name: str) -> AsyncIterator[Probe]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    nc = await auth.connect(name, error_cb=on_error)
    try:
        yield Probe(nc, errors)
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def provisioner(auth: AuthNats) -> AsyncIterator[Client]:
    nc = await auth.connect(natsauth.PROVISIONER)
    try:
        yield nc
    finally:
        await bus.close(nc)


async def stream_exists(auth: AuthNats, name: str) -> bool:
    async with provisioner(auth) as nc:
        try:
            await nc.jetstream().stream_info(name)
        except NotFoundError:
            return False
        return True


@pytest.mark.parametrize("name", IDENTITIES)
async def test_no_identity_can_create_a_stream_that_captures_admin_replies(
    auth_nats: AuthNats,  # noqa: F811
    name: str,
) -> None:
    capture = StreamConfig(
        name="CAPTURE",
        subjects=[f"{subjects.inbox_prefix('admin')}.>", "vault.admin.>"],
        storage=StorageType.MEMORY,
        no_ack=True,
    )
    async with probe(auth_nats, name) as p:
        with pytest.raises((NatsError, TimeoutError)):
            await p.js.add_stream(capture)
        assert await p.refused("stream.create.capture")
    assert not await stream_exists(auth_nats, "CAPTURE")


@pytest.mark.parametrize("name", IDENTITIES)
async def test_no_identity_can_make_the_server_republish_as_admin(
    auth_nats: AuthNats,  # noqa: F811
    name: str,
) -> None:
    echo = RePublish(src=">", dest=subjects.vault("admin", "set"))
    own_subject = subjects.audit(name, "probe")
    async with probe(auth_nats, name) as p:
        with pytest.raises((NatsError, TimeoutError)):
            await p.js.add_stream(StreamConfig(name="ECHO", subjects=[own_subject], republish=echo))
        assert await p.refused("stream.create.echo")
        events = StreamConfig(name=subjects.STREAM_EVENTS, subjects=[subjects.EVENT_ALL])
        events.republish = echo
        with pytest.raises((NatsError, TimeoutError)):
            await p.js.update_stream(events)
        assert await p.refused("stream.update.events")
    assert not await stream_exists(auth_nats, "ECHO")
    async with provisioner(auth_nats) as nc:
        info = await nc.jetstream().stream_info(subjects.STREAM_EVENTS)
    assert info.config.republish is None


@pytest.mark.parametrize("name", [n for n in IDENTITIES if n != "logger"])
async def test_only_the_logger_may_touch_its_audit_consumer(
    auth_nats: AuthNats,  # noqa: F811
    name: str,
) -> None:
    async with provisioner(auth_nats) as nc:
        js = nc.jetstream()
        await js.add_consumer(
            subjects.STREAM_AUDIT, ConsumerConfig(durable_name=subjects.DURABLE_LOGGER)
        )
    pause = f"{subjects.JS_API}.CONSUMER.PAUSE.{subjects.STREAM_AUDIT}.{subjects.DURABLE_LOGGER}"
    steal = f"{subjects.JS_API}.CONSUMER.MSG.NEXT.{subjects.STREAM_AUDIT}.{subjects.DURABLE_LOGGER}"
    async with probe(auth_nats, name) as p:
        for subject in (pause, steal):
            with pytest.raises((NatsError, TimeoutError)):
                await p.nc.request(subject, b'{"pause_until": "2099-01-01T00:00:00Z"}', timeout=1)
            assert await p.refused(subject.lower())
        with pytest.raises((NatsError, TimeoutError)):
            await p.js.delete_consumer(subjects.STREAM_AUDIT, subjects.DURABLE_LOGGER)
    async with provisioner(auth_nats) as nc:
        info = await nc.jetstream().consumer_info(subjects.STREAM_AUDIT, subjects.DURABLE_LOGGER)
    assert info.config.durable_name == subjects.DURABLE_LOGGER


@pytest.mark.parametrize("name", [*IDENTITIES, natsauth.PROVISIONER])
async def test_audit_records_cannot_be_purged_or_deleted_by_anyone(
    auth_nats: AuthNats,  # noqa: F811
    name: str,
) -> None:
    async with probe(auth_nats, "vault") as writer:
        ack = await writer.js.publish(subjects.audit("vault", "probe"), b"{}")
    async with probe(auth_nats, name) as p:
        for attempt in (
            p.js.purge_stream(subjects.STREAM_AUDIT, seq=ack.seq + 1),
            p.js.delete_msg(subjects.STREAM_AUDIT, ack.seq),
        ):
            # Refused by the grants, or (the provisioner) by the stream's deny_purge/deny_delete.
            with pytest.raises((NatsError, TimeoutError, APIError)):
                await attempt
    async with provisioner(auth_nats) as nc:
        msg = await nc.jetstream().get_msg(subjects.STREAM_AUDIT, ack.seq)
    assert msg.seq == ack.seq


async def test_reflections_of_stored_messages_do_not_reach_the_vault_as_admin(
    auth_nats: AuthNats,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The gateway may read EVENTS; it must not turn that into a write as admin."""
    settings = vault_settings(auth_nats, tmp_path)
    forged = orjson.dumps({"key": "reflected/secret", "value": "planted"})
    async with running_vault(auth_nats, settings) as (_vault, metrics, _nc):
        async with probe(auth_nats, "gateway") as p:
            ack = await p.js.publish(subjects.event("note"), forged)
            # 1. A direct get answers to any reply subject the asker names.
            direct = subjects.js_direct_get(subjects.STREAM_EVENTS)
            await p.nc.publish(
                direct, orjson.dumps({"seq": ack.seq}), reply=subjects.vault("admin", "set")
            )

            # 2. A pull consumer delivers to the reply subject of each pull request.
            info = await p.js.add_consumer(
                subjects.STREAM_EVENTS,
                ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=ack.seq,
                    ack_policy=AckPolicy.NONE,
                ),
            )
            pull = f"{subjects.JS_API}.CONSUMER.MSG.NEXT.{subjects.STREAM_EVENTS}.{info.name}"
            await p.nc.publish(pull, b'{"batch": 1}', reply=subjects.vault("admin", "set"))
            await p.nc.flush()
            await eventually(lambda: _refused(metrics, 2), timeout=10)
            await p.js.delete_consumer(subjects.STREAM_EVENTS, info.name)
        admin = await auth_nats.connect("admin")
        try:
            with pytest.raises(NotFound):
                await bus.request(
                    admin, subjects.vault("admin", "get"), {"key": "reflected/secret"}
                )
        finally:
            await bus.close(admin)


async def _refused(metrics: ServiceMetrics, count: int) -> bool:
    return bool(metrics.bad_input.labels("vault", "vault", REFUSED_REPLY)._value.get() >= count)


def _matches_any(patterns: tuple[str, ...], subject: str) -> bool:
    return any(subjects.subject_matches(p, subject) for p in patterns)


def _may_publish(name: str, subject: str) -> bool:
    perms = natsauth.permissions_for(name)
    return _matches_any(perms.publish, subject) and not _matches_any(perms.deny_publish, subject)


STREAMS = (
    subjects.STREAM_HEARTBEATS,
    subjects.STREAM_EVENTS,
    subjects.STREAM_AUDIT,
    subjects.kv_stream(subjects.KV_VAULT),
    subjects.kv_stream(subjects.KV_FLEET_STATE),
    subjects.kv_stream(subjects.KV_SESSION_REVOCATIONS),
    "CAPTURE",
)


@pytest.mark.parametrize("name", [*IDENTITIES, "ai-agent"])
def test_no_grant_administers_a_stream_or_reaches_another_identitys_consumer(name: str) -> None:
    for stream in STREAMS:
        for op in subjects.JS_ADMIN_OPS:
            assert not _may_publish(name, f"{subjects.JS_API}.{op}.{stream}"), (name, op, stream)
    for stream, durable in ((subjects.STREAM_AUDIT, "logger"), (subjects.STREAM_EVENTS, "logger")):
        for op in ("PAUSE", "DELETE", "CREATE", "INFO", "UNPIN", "MSG.NEXT", "DURABLE.CREATE"):
            subject = f"{subjects.JS_API}.CONSUMER.{op}.{stream}.{durable}"
            owned = name == "logger" and op not in ("PAUSE", "UNPIN")  # nobody pauses it
            assert _may_publish(name, subject) is owned, (name, subject)
    if name != "logger":
        # Ephemeral consumers on AUDIT would let anyone read every audit record.
        assert not _may_publish(name, f"{subjects.JS_API}.CONSUMER.CREATE.{subjects.STREAM_AUDIT}")


def test_only_the_provisioner_administers_streams() -> None:
    for op in subjects.JS_ADMIN_OPS:
        assert _may_publish(natsauth.PROVISIONER, f"{subjects.JS_API}.{op}.AUDIT")


async def test_what_a_service_needs_of_jetstream_is_still_granted(
    auth_nats: AuthNats,  # noqa: F811
) -> None:
    """The probes above see refusals, not a dead connection: permitted calls still answer."""
    async with probe(auth_nats, "gateway") as p:
        info = await p.js.stream_info(subjects.STREAM_EVENTS)
        ack = await p.js.publish(subjects.event("note"), b"{}")
        consumer = await p.js.add_consumer(
            subjects.STREAM_EVENTS,
            ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=ack.seq),
        )
        await p.js.delete_consumer(subjects.STREAM_EVENTS, consumer.name)
    assert info.config.name == subjects.STREAM_EVENTS
    assert not p.errors
