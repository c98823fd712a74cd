"""JetStream stream and KV definitions, and idempotent creation of them.

The stream layout is part of the architecture (see DESIGN.md): heartbeats are
kept per subject as the durable last state and history; events, audit records
and schedules live in their own streams.
"""

from __future__ import annotations

from dataclasses import dataclass

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

from vaultmesh.shared import subjects

DAY = 24 * 3600


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
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig, *, owner: bool = False) -> None:
    """Create ``config``'s stream when missing; only its ``owner`` updates an existing one.

    Several services write to the same stream, but one owns its tuning (history
    depth, replicas): fleet-state owns HEARTBEATS and EVENTS, the logger AUDIT.
    Everyone else only makes sure a publish has somewhere to land, so a service
    with default limits never overwrites the owner's.
    """
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Created by someone else between our look and our add: fine if it exists now.
            await js.stream_info(config.name)
        return
    if not owner:
        return
    try:
        await js.update_stream(config)
    except BadRequestError:
        # Some fields (storage, retention) cannot change in place; keep the existing stream.
        return


async def ensure_kv(
    js: JetStreamContext, bucket: str, replicas: int = 1, history: int = 1
) -> KeyValue:
    """Open KV ``bucket``, creating it when missing."""
    try:
        return await js.key_value(bucket)
    except (NotFoundError, BadRequestError):
        return await js.create_key_value(
            KeyValueConfig(bucket=bucket, history=history, replicas=replicas)
        )
