"""JetStream stream and KV definitions, and how a service opens them.

The stream layout is part of the architecture (see DESIGN.md): heartbeats are
kept per subject as the durable last state and history; events, audit records
and schedules live in their own streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from vaultmesh.shared import buckets, subjects
from vaultmesh.shared.errors import Unavailable

DAY = 24 * 3600
# How long a service waits at start for the provisioning step to make a missing stream.
WAIT_S = 60.0
_POLL_S = 1.0
# The fields a stream's owner tunes (compared before asking for an update).
_TUNED = (
    "subjects",
    "max_msgs_per_subject",
    "max_msgs",
    "max_age",
    "max_msg_size",
    "num_replicas",
    "discard",
    "duplicate_window",
    "allow_direct",
    "allow_batched",
    "deny_purge",
    "deny_delete",
)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamLimits:
    """Tunable limits of the streams (replicas=3 in the clustered stack)."""

    replicas: int = 1
    heartbeat_history: int = 100
    heartbeat_max_age_s: float = 7 * DAY
    events_max_age_s: float = 30 * DAY
    events_max_msgs: int = 1_000_000
    audit_max_age_s: float = 90 * DAY
    max_msg_bytes: int = 1024 * 1024


def heartbeats_config(limits: StreamLimits) -> StreamConfig:
    """HEARTBEATS: per-node history, so the stream is the durable last state."""
    return StreamConfig(
        name=subjects.STREAM_HEARTBEATS,
        subjects=[subjects.HEARTBEAT_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msgs_per_subject=limits.heartbeat_history,
        max_age=limits.heartbeat_max_age_s,
        max_msg_size=64 * 1024,
        discard=DiscardPolicy.OLD,
        num_replicas=limits.replicas,
        allow_direct=True,
        # Fast-ingest batches (nats-server 2.14+): the gateway publishes heartbeats in bursts.
        allow_batched=True,
    )


def events_config(limits: StreamLimits) -> StreamConfig:
    """EVENTS: the communication layer (notes, incidents, attention, scans, commands)."""
    return StreamConfig(
        name=subjects.STREAM_EVENTS,
        subjects=[subjects.EVENT_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msgs=limits.events_max_msgs,
        max_age=limits.events_max_age_s,
        max_msg_size=limits.max_msg_bytes,
        discard=DiscardPolicy.OLD,
        num_replicas=limits.replicas,
        allow_direct=True,
    )


def audit_config(limits: StreamLimits) -> StreamConfig:
    """AUDIT: audit records plus command, receipt and schedule traffic, for the logger."""
    return StreamConfig(
        name=subjects.STREAM_AUDIT,
        subjects=[
            subjects.AUDIT_ALL,
            subjects.COMMAND_ALL,
            subjects.RECEIPT_ALL,
            subjects.SCHED_FIRE_ALL,
        ],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=limits.audit_max_age_s,
        max_msg_size=limits.max_msg_bytes,
        discard=DiscardPolicy.OLD,
        num_replicas=limits.replicas,
        duplicate_window=120.0,
        # Fast-ingest batches (nats-server 2.14+): one ack per burst of audit records.
        allow_batched=True,
        # Records leave only by age: no purge or message delete, by anyone.
        deny_purge=True,
        deny_delete=True,
    )


def logger_log_config(limits: StreamLimits) -> StreamConfig:
    """LOGGER_LOG: the logger's log itself (entries, checkpoints, writer claims), kept for ever.

    No age, count or size limit: it is the log's durable copy, so it only grows (by the
    log's own size); delete and purge are refused like AUDIT's.
    """
    return StreamConfig(
        name=subjects.STREAM_LOGGER_LOG,
        subjects=[subjects.LOGGER_LOG_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msg_size=limits.max_msg_bytes,
        discard=DiscardPolicy.NEW,
        num_replicas=limits.replicas,
        allow_direct=True,
        deny_purge=True,
        deny_delete=True,
    )


async def ensure_stream(
    js: JetStreamContext, config: StreamConfig, *, owner: bool = False, wait_s: float = WAIT_S
) -> None:
    """Make sure ``config``'s stream exists; only its ``owner`` re-applies its tuning.

    With per-service NATS identities only the provisioning step (``provision.py``)
    may create or change a stream: a service finds its streams made, or waits up
    to ``wait_s`` for them and then fails with a message naming the step. Without
    NATS auth (tests, ``--no-nats-auth``) a service creates what is missing itself.
    An owner (fleet-state for HEARTBEATS and EVENTS, the logger for AUDIT) asks
    for an update only where the stream differs from its configuration, so a
    provisioned stream costs no request the server would refuse.
    """
    assert config.name is not None
    existing = await _stream_config(js, config.name)
    if existing is None:
        if not await _attempt(js.add_stream(config), config.name, "create"):
            await _await_stream(js, config.name, wait_s)
        return
    if owner and differs(existing, config):
        await _attempt(js.update_stream(config), config.name, "update")


def differs(existing: StreamConfig, wanted: StreamConfig) -> bool:
    """True when a field ``wanted`` sets has another value in ``existing``."""
    for name in _TUNED:
        want, have = getattr(wanted, name), getattr(existing, name)
        if name == "subjects":
            want, have = set(want or ()), set(have or ())
        if want is not None and want != have:
            return True
    return False


async def _stream_config(js: JetStreamContext, name: str) -> StreamConfig | None:
    try:
        return (await js.stream_info(name)).config
    except NotFoundError:
        return None


async def _attempt(request: Awaitable[object], stream: str, verb: str) -> bool:
    """Run a create or update of ``stream``; False when it did not happen."""
    try:
        await request
    except BadRequestError as exc:
        # Created by someone else meanwhile, or a field that cannot change in place.
        log.info("stream %s not %sd: %s", stream, verb, exc.description, extra={"stream": stream})
        return False
    except NatsTimeoutError:
        # A permission violation gets no answer: this identity may not administer streams.
        log.warning(
            "stream %s not %sd: this identity may not; the provisioning step does",
            stream,
            verb,
            extra={"stream": stream},
        )
        return False
    return True


async def _await_stream(js: JetStreamContext, name: str, wait_s: float) -> None:
    """Wait for the provisioning step to create stream ``name``."""
    deadline = time.monotonic() + wait_s
    while await _stream_config(js, name) is None:
        if time.monotonic() >= deadline:
            raise Unavailable(
                f"stream {name} does not exist and this identity may not create it: "
                "run the provisioning step (`vaultmesh provision`)"
            )
        await asyncio.sleep(_POLL_S)


async def ensure_kv(
    js: JetStreamContext, bucket: str, replicas: int = 1, history: int = 1, wait_s: float = WAIT_S
) -> KeyValue:
    """Open KV ``bucket`` (configured by ``buckets.kv_config``); see ``open_bucket``."""
    return await open_bucket(js, buckets.kv_config(bucket, replicas, history), wait_s)


async def open_bucket(
    js: JetStreamContext, config: KeyValueConfig, wait_s: float = WAIT_S
) -> KeyValue:
    """Open ``config``'s bucket; create it where this identity may, else wait for provisioning."""
    with contextlib.suppress(NotFoundError, BadRequestError):
        return await js.key_value(config.bucket)
    stream = subjects.kv_stream(config.bucket)
    if not await _attempt(js.create_key_value(config), stream, "create"):
        await _await_stream(js, stream, wait_s)
    return await js.key_value(config.bucket)
