"""Static per-service NATS identities (user + random password) for local runs and tests.

Interface::

    identities = load_or_create(data_dir, principals=("ai-agent",))  # dict[str, Identity]
    text = server_config(identities)    # nats-server `authorization { users = [...] }` block
    env = identity_env(identities["vault"])  # VAULTMESH_NATS_USER / VAULTMESH_NATS_PASSWORD

``load_or_create`` keeps one random password per identity in
``<data_dir>/nats-identities.json`` (mode 0600; new names are added, existing
passwords kept). Identities: the services (``fleet``, ``gateway``, ``vault``,
``logger``, ``scheduler``, ``agent``), the operator CLI ``admin``, the
``provisioner`` (the provisioning step, see ``vaultmesh.shared.provision``) and
any vault principals named (AI agents and tools). Each gets least-privilege
permissions from ``permissions_for``; the NATS server enforces them, so a
principal P can publish vault requests only on ``vault.P.>``.

JetStream is part of the attack surface: a stream or a consumer can capture a
subject and deliver or republish it anywhere. So only the provisioner may create,
update, purge or delete streams and buckets; a service's ``$JS.API`` grants name
its own streams, buckets and consumers, and the logger's durable consumers are
denied by name to every other reader of their streams.

Passwords never go to a log or a ``repr``; the generated config text holds them
in clear, so write it to a file only the server's user can read (or prefer the
minted credentials of the identity issue, which replace these users).

``private_inboxes=True`` confines every identity to its own reply inbox
(``_INBOX_<name>.>``, see ``inbox_prefix``) so that one principal cannot read
another's replies; the client must then connect with that inbox prefix.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vaultmesh.shared import subjects
from vaultmesh.shared.files import atomic_write

FILE_NAME = "nats-identities.json"
ADMIN = "admin"
PROVISIONER = "provisioner"
# The one user of the system account: it only receives the server's auth-failure advisories.
MONITOR = "monitor"
SYSTEM_ACCOUNT = "SYS"
SERVICES = ("fleet", "gateway", "vault", "logger", "scheduler", "agent")
BUILTIN = (*SERVICES, ADMIN, PROVISIONER, MONITOR)


@dataclass(frozen=True)
class Permissions:
    """What one identity may publish and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May reply to requests it received (micro endpoints, $SRV pings) without a publish grant.
    allow_responses: bool = False
    # Refused even where ``publish`` allows (another identity's durable consumers).
    deny_publish: tuple[str, ...] = ()


@dataclass(frozen=True)
class Identity:
    """One NATS user: its name and password (never shown by ``repr``)."""

    name: str
    password: str = field(repr=False)

    @property
    def permissions(self) -> Permissions:
        """The least-privilege permissions of this identity."""
        return permissions_for(self.name)


def inbox_prefix(name: str) -> str:
    """The private reply-inbox prefix of identity ``name`` (with ``private_inboxes``)."""
    return subjects.inbox_prefix(name)


# Who reads which stream through consumers, and the durable consumers that belong to one
# identity only: every other reader of that stream is denied each API subject naming them.
_DURABLES = (
    (subjects.STREAM_AUDIT, subjects.DURABLE_LOGGER),
    (subjects.STREAM_EVENTS, subjects.DURABLE_LOGGER),
)


def _reader(*streams: str) -> tuple[str, ...]:
    """Inspect, read and run ephemeral consumers on ``streams``."""
    grants: list[str] = []
    for stream in streams:
        grants += [*subjects.js_read_grants(stream), *subjects.js_consume_grants(stream)]
    return tuple(grants)


def _others_durables(name: str, streams: Iterable[str]) -> tuple[str, ...]:
    owner = {subjects.DURABLE_LOGGER: "logger"}
    denies: list[str] = []
    for stream, durable in _DURABLES:
        if stream in streams and owner[durable] != name:
            denies += subjects.js_consumer_denies(stream, durable)
    return tuple(denies)


def _vault() -> Permissions:
    # Audit records go to AUDIT by plain subject (no API grant); the secrets live in its KV.
    return Permissions(
        publish=(
            subjects.audit_of("vault"),
            *subjects.js_info_grants(subjects.STREAM_AUDIT),
            *subjects.kv_grants(subjects.KV_VAULT),
            *subjects.kv_grants(subjects.KV_VAULT_LEASES),
        ),
        subscribe=(subjects.VAULT_ALL, subjects.SRV_ALL, subjects.INBOX_ALL),
        allow_responses=True,
    )


def _fleet() -> Permissions:
    streams = (subjects.STREAM_HEARTBEATS, subjects.STREAM_EVENTS)
    return Permissions(
        publish=(
            subjects.EVENT_ALL,
            subjects.audit_of("fleet"),
            *subjects.kv_grants(subjects.KV_FLEET_STATE),
            *_reader(*streams),
            *subjects.js_info_grants(subjects.STREAM_AUDIT),
        ),
        subscribe=(
            subjects.HEARTBEAT_ALL,
            subjects.EVENT_ALL,
            subjects.FLEET_API_ALL,
            subjects.SRV_ALL,
            subjects.INBOX_ALL,
        ),
        allow_responses=True,
        deny_publish=_others_durables("fleet", streams),
    )


def _gateway() -> Permissions:
    streams = (subjects.STREAM_HEARTBEATS, subjects.STREAM_EVENTS)
    return Permissions(
        publish=(
            subjects.HEARTBEAT_ALL,
            subjects.EVENT_ALL,
            subjects.FLEET_API_ALL,
            subjects.audit_of("gateway"),
            subjects.SRV_ALL,
            *_reader(*streams),
            *subjects.js_info_grants(subjects.STREAM_AUDIT),
            # Signed-out browser sessions, shared by every gateway replica.
            *subjects.kv_grants(subjects.KV_SESSION_REVOCATIONS),
        ),
        subscribe=(subjects.HEARTBEAT_ALL, subjects.EVENT_ALL, subjects.INBOX_ALL),
        deny_publish=_others_durables("gateway", streams),
    )


def _logger() -> Permissions:
    grants: list[str] = []
    for stream, durable in _DURABLES:
        grants += [*subjects.js_read_grants(stream), *subjects.js_consume_grants(stream, durable)]
    # Its replicated log: publish entries and checkpoints, read them back (no consumer).
    grants += [subjects.LOGGER_LOG_ALL, *subjects.js_read_grants(subjects.STREAM_LOGGER_LOG)]
    return Permissions(
        # A gap in a stream it logs is also raised as an incident event.
        publish=(subjects.audit_of("logger"), subjects.event("incident"), *dict.fromkeys(grants)),
        subscribe=(subjects.LOGS_ALL, subjects.SRV_ALL, subjects.INBOX_ALL),
        allow_responses=True,
    )


def _scheduler() -> Permissions:
    # No JetStream API at all until the scheduler issue gives it its own SCHEDULES stream.
    return Permissions(
        publish=(
            subjects.SCHED_ALL,
            subjects.vault("scheduler", "rotate"),
            subjects.audit_of("scheduler"),
        ),
        subscribe=(subjects.SCHED_ALL, subjects.SRV_ALL, subjects.INBOX_ALL),
        allow_responses=True,
    )


def _agent() -> Permissions:
    # One identity shared by every agent, so no command or receipt grants: they would let
    # any agent read every node's commands and forge any node's receipts (which AUDIT keeps).
    # Per-node scoping (only its own subjects) comes with the identity issue's node keys.
    return Permissions(publish=(subjects.HEARTBEAT_ALL,), subscribe=(subjects.INBOX_ALL,))


def _provisioner() -> Permissions:
    # The provisioning step: the one identity that creates and tunes streams and buckets.
    return Permissions(publish=(subjects.JS_API_ALL,), subscribe=(subjects.INBOX_ALL,))


def _monitor() -> Permissions:
    # A system-account user could ask servers for much (and kick clients): this one only listens.
    return Permissions(publish=(), subscribe=(subjects.NATS_AUTH_ERROR_ALL,))


def _admin() -> Permissions:
    # The operator CLI: its own vault principal plus the read APIs of the other services.
    return Permissions(
        publish=(
            subjects.vault_principal_prefix(ADMIN),
            subjects.FLEET_API_ALL,
            subjects.LOGS_ALL,
            subjects.SCHED_ALL,
            subjects.EVENT_ALL,
            subjects.SRV_ALL,
        ),
        subscribe=(subjects.INBOX_ALL,),
    )


_GRANTS = {
    "vault": _vault,
    "fleet": _fleet,
    "gateway": _gateway,
    "logger": _logger,
    "scheduler": _scheduler,
    "agent": _agent,
    PROVISIONER: _provisioner,
    MONITOR: _monitor,
    ADMIN: _admin,
}


def _principal(name: str) -> Permissions:
    return Permissions(
        publish=(subjects.vault_principal_prefix(name),), subscribe=(subjects.INBOX_ALL,)
    )


def permissions_for(name: str) -> Permissions:
    """Permissions of identity ``name``: a built-in service, ``admin``, or a vault principal."""
    grants = _GRANTS.get(name)
    return _principal(name) if grants is None else grants()


def _new_password() -> str:
    return secrets.token_urlsafe(32)


def _read(path: Path) -> dict[str, str]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise ValueError(f"{path} is not a readable identities file") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise ValueError(f"{path} must map identity names to passwords")
    return loaded


def _write_private(path: Path, data: dict[str, str]) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 from the start."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode(), mode=0o600)


def load_or_create(data_dir: Path, principals: Iterable[str] = ()) -> dict[str, Identity]:
    """The identities kept in ``data_dir`` (created 0700), adding any missing ones."""
    names = list(dict.fromkeys([*BUILTIN, *principals]))
    for name in names:
        subjects.token(name)  # raises ValueError on a name that is not one subject token
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / FILE_NAME
    stored = _read(path)
    missing = [name for name in names if name not in stored]
    if missing or (path.exists() and path.stat().st_mode & 0o077):
        stored.update({name: _new_password() for name in missing})
        _write_private(path, stored)
    return {name: Identity(name, stored[name]) for name in names}


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(json.dumps(item) for item in items)


def _publish_rule(perms: Permissions) -> str:
    if not perms.publish:
        return '{ deny: [">"] }'
    return f"{{ allow: [{_quoted(perms.publish)}]{_denied(perms.deny_publish)} }}"


def _denied(items: tuple[str, ...]) -> str:
    return f", deny: [{_quoted(items)}]" if items else ""


def subscribe_grants(name: str, *, private_inboxes: bool) -> tuple[str, ...]:
    """What identity ``name`` may subscribe to (only its own reply inbox if ``private_inboxes``)."""
    own = f"{inbox_prefix(name)}.>"
    grants = permissions_for(name).subscribe
    return tuple(own if private_inboxes and item == subjects.INBOX_ALL else item for item in grants)


def user_entry(name: str, credential: str, *, private_inboxes: bool) -> str:
    """One nats-server user: ``credential`` (``user: .., password: ..`` or ``nkey: ..``), grants."""
    perms = permissions_for(name)
    subscribe = subscribe_grants(name, private_inboxes=private_inboxes)
    lines = [
        f"    # {name}",
        f"    {{ {credential},",
        "      permissions: {",
        f"        publish: {_publish_rule(perms)}",
        f"        subscribe: {{ allow: [{_quoted(subscribe)}] }}",
    ]
    if perms.allow_responses:
        lines.append('        allow_responses: { max: 1, expires: "1m" }')
    lines.append("      } }")
    return "\n".join(lines)


def authorization_block(entries: Iterable[str], system: Iterable[str] = ()) -> str:
    """The nats-server ``authorization { users = [...] }`` block around ``user_entry`` texts,
    and the system account holding the ``system`` entries (the monitor) when there are any."""
    users = ",\n".join(entries)
    text = f"authorization {{\n  users = [\n{users}\n  ]\n}}\n"
    system_users = ",\n".join(system)
    if system_users:
        text += (
            f"accounts {{\n  {SYSTEM_ACCOUNT}: {{\n  users = [\n{system_users}\n  ]\n  }}\n}}\n"
            f"system_account: {SYSTEM_ACCOUNT}\n"
        )
    return text


def server_config(identities: dict[str, Identity], *, private_inboxes: bool = False) -> str:
    """The nats-server users of ``identities``: ``authorization`` block and system account."""

    def entry(ident: Identity) -> str:
        credential = f"user: {json.dumps(ident.name)}, password: {json.dumps(ident.password)}"
        return user_entry(ident.name, credential, private_inboxes=private_inboxes)

    return authorization_block(
        (entry(i) for i in identities.values() if i.name != MONITOR),
        (entry(i) for i in identities.values() if i.name == MONITOR),
    )


def identity_env(identity: Identity, *, private_inboxes: bool = False) -> dict[str, str]:
    """Environment variables that make a VaultMesh process connect as ``identity``."""
    env = {"VAULTMESH_NATS_USER": identity.name, "VAULTMESH_NATS_PASSWORD": identity.password}
    if private_inboxes:
        env["VAULTMESH_NATS_INBOX_PREFIX"] = inbox_prefix(identity.name)
    return env
