"""The provisioning step: create and tune every stream and KV bucket of a deployment.

A permission to create or update a stream is a permission to capture any subject
and republish it anywhere, so no service identity holds one (see ``natsauth``).
This step runs instead, as the ``provisioner`` identity: ``vaultmesh up`` runs it
before starting the services, the Swarm stack runs it as the one-shot service
``provision`` (``vaultmesh provision``), and an operator can run it again after
an upgrade. It is idempotent: what exists and matches is left alone, a stream
whose tuning changed is updated, and a field that cannot change in place is
reported, not forced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from vaultmesh.shared import buckets, streams, subjects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provisioned:
    """What one run found and did, by stream name."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    def summary(self) -> str:
        """One line for the operator."""
        parts = (("created", self.created), ("updated", self.updated), ("ok", self.unchanged))
        return "; ".join(f"{verb}: {', '.join(names)}" for verb, names in parts if names)


def bucket_configs(replicas: int) -> list[KeyValueConfig]:
    """Every KV bucket of the deployment."""
    return [
        buckets.kv_config(subjects.KV_FLEET_STATE, replicas),
        buckets.kv_config(subjects.KV_VAULT, replicas),
        buckets.session_revocations_config(replicas),
        buckets.vault_leases_config(replicas),
    ]


def stream_configs(limits: streams.StreamLimits) -> list[StreamConfig]:
    """Every stream of the deployment (KV buckets aside)."""
    return [
        streams.heartbeats_config(limits),
        streams.events_config(limits),
        streams.audit_config(limits),
        streams.logger_log_config(limits),
    ]


async def provision(nc: Client, limits: streams.StreamLimits) -> Provisioned:
    """Create what is missing and update what differs; raises ``nats`` errors as they come."""
    js = nc.jetstream()
    verdicts: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    for config in stream_configs(limits):
        assert config.name is not None
        verdicts[await _apply(js, config)].append(config.name)
    for bucket in bucket_configs(limits.replicas):
        verdicts[await _bucket(js, bucket)].append(subjects.kv_stream(bucket.bucket))
    done = Provisioned(
        tuple(verdicts["created"]), tuple(verdicts["updated"]), tuple(verdicts["unchanged"])
    )
    log.info("provisioned: %s", done.summary())
    return done


async def _bucket(js: JetStreamContext, config: KeyValueConfig) -> str:
    try:
        await js.key_value(config.bucket)
    except NotFoundError:
        await js.create_key_value(config)
        return "created"
    return "unchanged"


async def _apply(js: JetStreamContext, config: StreamConfig) -> str:
    assert config.name is not None
    try:
        existing = (await js.stream_info(config.name)).config
    except NotFoundError:
        await js.add_stream(config)
        return "created"
    if not streams.differs(existing, config):
        return "unchanged"
    try:
        await js.update_stream(config)
    except BadRequestError as exc:
        # Storage, retention and the like cannot change in place: say so, keep the stream.
        log.warning("stream %s kept as it is: %s", config.name, exc.description)
        return "unchanged"
    return "updated"
