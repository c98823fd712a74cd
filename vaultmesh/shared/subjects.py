"""Every NATS subject, stream, bucket and queue-group name used by VaultMesh.

This is the only module that builds subject strings. Handlers, services and
tools call these functions instead of formatting subjects by hand, so a rename
happens in one place and a token can never smuggle a wildcard or separator in.
"""

from __future__ import annotations

import re
from uuid import UUID

# A single subject token: no separators, wildcards or whitespace.
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
NO_NODE = "_"

# ---- streams and buckets -------------------------------------------------------------
STREAM_HEARTBEATS = "HEARTBEATS"
STREAM_EVENTS = "EVENTS"
STREAM_AUDIT = "AUDIT"
STREAM_SCHEDULES = "SCHEDULES"
KV_FLEET_STATE = "FLEET_STATE"
KV_VAULT = "VAULT"

# ---- queue groups --------------------------------------------------------------------
QUEUE_FLEET = "fleet"
QUEUE_VAULT = "vault"
QUEUE_LOGS = "logs"
QUEUE_SCHED = "sched"

# ---- micro service names (for $SRV discovery) ----------------------------------------
SERVICE_FLEET = "fleet"
SERVICE_VAULT = "vault"
SERVICE_LOGS = "logs"
SERVICE_SCHED = "sched"

# ---- durable consumer names ----------------------------------------------------------
DURABLE_LOGGER = "logger"


def token(value: str | UUID) -> str:
    """Return ``value`` as one safe subject token, or raise ``ValueError``."""
    if isinstance(value, UUID):
        return str(value)  # hex digits and dashes: always a safe token
    text = str(value)
    if not _TOKEN.fullmatch(text):
        raise ValueError(f"not a valid subject token: {text!r}")
    return text


# ---- heartbeats ----------------------------------------------------------------------
HEARTBEAT_ALL = "fleet.heartbeat.*"


def heartbeat(node_id: str | UUID) -> str:
    """Subject a node publishes its heartbeat on."""
    return f"fleet.heartbeat.{token(node_id)}"


def node_from_heartbeat_subject(subject: str) -> str:
    """The node-id token of a ``fleet.heartbeat.<node>`` subject."""
    prefix = "fleet.heartbeat."
    if not subject.startswith(prefix) or "." in subject[len(prefix) :]:
        raise ValueError(f"not a heartbeat subject: {subject!r}")
    return subject[len(prefix) :]


# ---- events --------------------------------------------------------------------------
EVENT_ALL = "fleet.event.>"


def event(kind: str, node_id: str | UUID | None = None) -> str:
    """Subject of an EventEnvelope of ``kind`` about ``node_id`` (or no node)."""
    node = NO_NODE if node_id is None else token(node_id)
    return f"fleet.event.{token(kind)}.{node}"


def event_filter(kind: str | None = None, node_id: str | UUID | None = None) -> str:
    """A wildcard subject matching events by optional kind and node."""
    k = "*" if kind is None else token(kind)
    n = "*" if node_id is None else token(node_id)
    return f"fleet.event.{k}.{n}"


# ---- commands and receipts -----------------------------------------------------------
COMMAND_ALL = "fleet.cmd.*"
RECEIPT_ALL = "fleet.receipt.*"


def command(node_id: str | UUID) -> str:
    """Subject a signed command to ``node_id`` is published on."""
    return f"fleet.cmd.{token(node_id)}"


def receipt(node_id: str | UUID) -> str:
    """Subject ``node_id`` publishes command receipts on."""
    return f"fleet.receipt.{token(node_id)}"


# ---- audit ---------------------------------------------------------------------------
AUDIT_ALL = "audit.>"


def audit(service: str, action: str) -> str:
    """Subject of an audit record from ``service`` about ``action``."""
    return f"audit.{token(service)}.{token(action)}"


# ---- scheduler -----------------------------------------------------------------------
SCHED_FIRE_ALL = "sched.fire.>"


def sched_fire(name: str) -> str:
    """Subject a schedule named ``name`` fires on."""
    return f"sched.fire.{token(name)}"


# ---- micro service endpoints ---------------------------------------------------------
FLEET_API_PREFIX = "fleet.api"
LOGS_PREFIX = "logs"
SCHED_PREFIX = "sched"
VAULT_PREFIX = "vault"
VAULT_ALL = "vault.*.*"


def fleet_api(op: str) -> str:
    """Request subject of the fleet-state micro endpoint ``op``."""
    return f"{FLEET_API_PREFIX}.{token(op)}"


def logs_api(op: str) -> str:
    """Request subject of the logger micro endpoint ``op``."""
    return f"{LOGS_PREFIX}.{token(op)}"


def sched_api(op: str) -> str:
    """Request subject of the scheduler micro endpoint ``op``."""
    return f"{SCHED_PREFIX}.{token(op)}"


def vault(principal: str, op: str) -> str:
    """Request subject for ``principal`` asking the vault to do ``op``."""
    return f"{VAULT_PREFIX}.{token(principal)}.{token(op)}"


def vault_principal_prefix(principal: str) -> str:
    """The subject space principal ``principal`` may publish vault requests in."""
    return f"{VAULT_PREFIX}.{token(principal)}.>"


def vault_parts(subject: str) -> tuple[str, str]:
    """Split ``vault.<principal>.<op>`` into (principal, op)."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != VAULT_PREFIX:
        raise ValueError(f"not a vault request subject: {subject!r}")
    return parts[1], parts[2]


# ---- appended by the vault issue -----------------------------------------------------


def audit_of(service: str) -> str:
    """A wildcard subject matching every audit record from ``service``."""
    return f"audit.{token(service)}.>"


# ---- JetStream direct get (fleet-state heartbeat history) -----------------------------
def js_direct_get(stream: str) -> str:
    """Direct-get request subject of ``stream`` (answered by any replica, no consumer)."""
    return f"{JS_API}.DIRECT.GET.{token(stream)}"


# ---- NATS system subjects (for permission grants) ------------------------------------
INBOX_ALL = "_INBOX.>"
SRV_ALL = "$SRV.>"
JS_API = "$JS.API"
JS_API_ALL = f"{JS_API}.>"
JS_ACK = "$JS.ACK"
JS_ACK_ALL = f"{JS_ACK}.>"
JS_FC = "$JS.FC"
JS_FC_ALL = f"{JS_FC}.>"
# The server's advisory for every failed client authentication (system account only).
NATS_AUTH_ERROR_ALL = "$SYS.SERVER.*.CLIENT.AUTH.ERR"
FLEET_API_ALL = f"{FLEET_API_PREFIX}.>"
LOGS_ALL = f"{LOGS_PREFIX}.>"
SCHED_ALL = f"{SCHED_PREFIX}.>"


def inbox_prefix(name: str) -> str:
    """The private reply-inbox prefix of NATS identity ``name``."""
    return f"_INBOX_{token(name)}"


def kv_stream(bucket: str) -> str:
    """The stream behind KV bucket ``bucket``."""
    return f"KV_{token(bucket)}"


def kv_all(bucket: str) -> str:
    """Every key subject of KV bucket ``bucket``."""
    return f"$KV.{token(bucket)}.>"


def js_info_grants(stream: str) -> tuple[str, ...]:
    """JetStream API subjects to look at one stream's configuration and state (not its data)."""
    return (f"{JS_API}.INFO", f"{JS_API}.STREAM.INFO.{token(stream)}")


def js_read_grants(stream: str) -> tuple[str, ...]:
    """JetStream API subjects to inspect one stream and read its messages by sequence."""
    name = token(stream)
    return (
        *js_info_grants(stream),
        f"{JS_API}.STREAM.MSG.GET.{name}",
        f"{JS_API}.DIRECT.GET.{name}",
        f"{JS_API}.DIRECT.GET.{name}.>",
    )


def js_consume_grants(stream: str, durable: str | None = None) -> tuple[str, ...]:
    """JetStream API subjects to run consumers on one stream: ``durable`` only, or ephemeral ones.

    A consumer can deliver a stream's messages to any subject, so consumers are only
    granted on streams whose content the identity may read anyway; see ``js_consumer_denies``
    for keeping an ephemeral reader off another identity's durable consumer.
    """
    name = token(stream)
    consumer = token(durable) if durable else "*"
    grants = [
        f"{JS_API}.CONSUMER.INFO.{name}.{consumer}",
        f"{JS_API}.CONSUMER.DELETE.{name}.{consumer}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{name}.{consumer}",
        f"{JS_API}.CONSUMER.CREATE.{name}.{consumer}",
        f"{JS_API}.CONSUMER.CREATE.{name}.{consumer}.>",
        f"{JS_ACK}.{name}.{consumer}.>",
        f"{JS_FC}.{name}.{consumer}.>",
    ]
    if durable:
        grants.append(f"{JS_API}.CONSUMER.DURABLE.CREATE.{name}.{consumer}")
    else:
        grants.append(f"{JS_API}.CONSUMER.CREATE.{name}")  # unnamed (ordered) consumers
    return tuple(grants)


def js_consumer_denies(stream: str, durable: str) -> tuple[str, ...]:
    """Every API subject that addresses durable consumer ``durable`` of ``stream`` by name."""
    name, consumer = token(stream), token(durable)
    return (
        f"{JS_API}.CONSUMER.*.{name}.{consumer}",
        f"{JS_API}.CONSUMER.*.{name}.{consumer}.>",
        f"{JS_API}.CONSUMER.*.*.{name}.{consumer}",
        f"{JS_ACK}.{name}.{consumer}.>",
        f"{JS_FC}.{name}.{consumer}.>",
    )


def kv_grants(bucket: str) -> tuple[str, ...]:
    """Read, write and watch the keys of KV ``bucket`` (never create, purge or delete it)."""
    stream = kv_stream(bucket)
    return (kv_all(bucket), *js_read_grants(stream), *js_consume_grants(stream))


# Administration of streams and buckets: only the provisioning identity holds these.
JS_ADMIN_OPS = (
    "STREAM.CREATE",
    "STREAM.UPDATE",
    "STREAM.DELETE",
    "STREAM.PURGE",
    "STREAM.MSG.DELETE",
    "STREAM.RESTORE",
    "STREAM.SNAPSHOT",
)


# ---- wildcard patterns (appended for the logger's subject filter) ---------------------


def is_pattern(pattern: str) -> bool:
    """True when ``pattern`` is a well-formed subject or wildcard pattern (``*``, final ``>``)."""
    tokens = pattern.split(".")
    for i, tok in enumerate(tokens):
        if tok == ">" and i == len(tokens) - 1:
            continue
        if tok != "*" and not _TOKEN.fullmatch(tok):
            return False
    return True


def subject_matches(pattern: str, subject: str) -> bool:
    """True when ``subject`` matches the NATS wildcard ``pattern``."""
    want, have = pattern.split("."), subject.split(".")
    for i, tok in enumerate(want):
        if tok == ">":
            return len(have) > i
        if i >= len(have) or (tok != "*" and tok != have[i]):
            return False
    return len(have) == len(want)


# Subject recorded on the logger's own entry noting that a stream restarted its sequence
# (never published on the bus; a label inside the audit log).
LOGGER_STREAM_RESET = "logs.meta.stream_reset"

# Subject recorded on the logger's own entry noting that stream sequences are missing
# (deleted, purged or aged out before the logger read them); a label inside the audit log.
LOGGER_STREAM_GAP = "logs.meta.stream_gap"

# ---- appended for node removal and session revocation (issue 12) ----------------------
# Revoked browser sessions (gateway logout), one key per session id; see shared/buckets.py.
KV_SESSION_REVOCATIONS = "SESSION_REVOCATIONS"


def kv_key(bucket: str, key: str) -> str:
    """The subject of ``key`` in KV bucket ``bucket`` (a key is dot-free here: one token)."""
    return f"$KV.{token(bucket)}.{token(key)}"


# ---- appended for vault replicas (issue 14) ---------------------------------------------
# The vault's leases (who runs the background rewrap), one key per lease; see shared/buckets.py.
KV_VAULT_LEASES = "VAULT_LEASES"

# ---- appended for the durable logger (issue 14) ---------------------------------------
# The logger's replicated log: every entry and checkpoint is stored here before the source
# message is acknowledged, so a new logger task on an empty volume continues the same log
# (services/logger/replica.py). Only the logger publishes here, and only the provisioning
# step creates the stream.
STREAM_LOGGER_LOG = "LOGGER_LOG"
LOGGER_LOG_ALL = "logger.log.>"
LOGGER_LOG_ENTRIES = "logger.log.entries"
LOGGER_LOG_CHECKPOINT = "logger.log.checkpoint"
LOGGER_LOG_WRITER = "logger.log.writer"
