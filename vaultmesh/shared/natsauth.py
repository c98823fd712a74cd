"""Static per-service NATS identities (user + random password) for local runs and tests.

Interface::

    identities = load_or_create(data_dir, principals=("ai-agent",))  # dict[str, Identity]
    text = server_config(identities)    # nats-server `authorization { users = [...] }` block
    env = identity_env(identities["vault"])  # VAULTMESH_NATS_USER / VAULTMESH_NATS_PASSWORD

``load_or_create`` keeps one random password per identity in
``<data_dir>/nats-identities.json`` (mode 0600; new names are added, existing
passwords kept). Identities: the services (``fleet``, ``gateway``, ``vault``,
``logger``, ``scheduler``, ``agent``), the operator CLI ``admin`` and any vault
principals named (AI agents and tools). Each gets least-privilege permissions
from ``permissions_for``; the NATS server enforces them, so a principal P can
publish vault requests only on ``vault.P.>``.

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
SERVICES = ("fleet", "gateway", "vault", "logger", "scheduler", "agent")
BUILTIN = (*SERVICES, ADMIN)


@dataclass(frozen=True)
class Permissions:
    """What one identity may publish and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May reply to requests it received (micro endpoints, $SRV pings) without a publish grant.
    allow_responses: bool = False


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


def _vault() -> Permissions:
    # Scoped to the two streams it uses: AUDIT (publish records) and its KV bucket.
    return Permissions(
        publish=(
            subjects.audit_of("vault"),
            subjects.kv_all(subjects.KV_VAULT),
            *subjects.js_stream_grants(subjects.STREAM_AUDIT),
            *subjects.js_stream_grants(subjects.kv_stream(subjects.KV_VAULT), consume=True),
        ),
        subscribe=(subjects.VAULT_ALL, subjects.SRV_ALL, subjects.INBOX_ALL),
        allow_responses=True,
    )


# Services other than the vault get the whole JetStream API for now; per-stream
# scoping of their grants comes with the identity issue (minted credentials).
_SERVICE_GRANTS: dict[str, Permissions] = {
    "fleet": Permissions(
        publish=(
            subjects.EVENT_ALL,
            subjects.COMMAND_ALL,
            subjects.audit_of("fleet"),
            subjects.kv_all(subjects.KV_FLEET_STATE),
            subjects.JS_API_ALL,
            subjects.JS_ACK_ALL,
            subjects.JS_FC_ALL,
        ),
        subscribe=(
            subjects.HEARTBEAT_ALL,
            subjects.EVENT_ALL,
            subjects.RECEIPT_ALL,
            subjects.FLEET_API_ALL,
            subjects.SRV_ALL,
            subjects.INBOX_ALL,
        ),
        allow_responses=True,
    ),
    "gateway": Permissions(
        publish=(
            subjects.HEARTBEAT_ALL,
            subjects.EVENT_ALL,
            subjects.FLEET_API_ALL,
            subjects.audit_of("gateway"),
            subjects.SRV_ALL,
            subjects.JS_API_ALL,
            subjects.JS_ACK_ALL,
            subjects.JS_FC_ALL,
        ),
        subscribe=(subjects.HEARTBEAT_ALL, subjects.EVENT_ALL, subjects.INBOX_ALL),
    ),
    "logger": Permissions(
        publish=(
            subjects.audit_of("logger"),
            subjects.JS_API_ALL,
            subjects.JS_ACK_ALL,
            subjects.JS_FC_ALL,
        ),
        subscribe=(subjects.LOGS_ALL, subjects.SRV_ALL, subjects.INBOX_ALL),
        allow_responses=True,
    ),
    "scheduler": Permissions(
        publish=(
            subjects.SCHED_ALL,
            subjects.vault("scheduler", "rotate"),
            subjects.audit_of("scheduler"),
            subjects.JS_API_ALL,
            subjects.JS_ACK_ALL,
        ),
        subscribe=(subjects.SCHED_ALL, subjects.SRV_ALL, subjects.INBOX_ALL),
        allow_responses=True,
    ),
    # Per-node scoping (only its own fleet.heartbeat.<node>) comes with the identity issue.
    "agent": Permissions(
        publish=(subjects.HEARTBEAT_ALL, subjects.RECEIPT_ALL),
        subscribe=(subjects.COMMAND_ALL, subjects.INBOX_ALL),
    ),
}


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


def _principal(name: str) -> Permissions:
    return Permissions(
        publish=(subjects.vault_principal_prefix(name),), subscribe=(subjects.INBOX_ALL,)
    )


def permissions_for(name: str) -> Permissions:
    """Permissions of identity ``name``: a built-in service, ``admin``, or a vault principal."""
    if name == "vault":
        return _vault()
    if name == ADMIN:
        return _admin()
    if name in _SERVICE_GRANTS:
        return _SERVICE_GRANTS[name]
    return _principal(name)


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
        f"        publish: {{ allow: [{_quoted(perms.publish)}] }}",
        f"        subscribe: {{ allow: [{_quoted(subscribe)}] }}",
    ]
    if perms.allow_responses:
        lines.append('        allow_responses: { max: 1, expires: "1m" }')
    lines.append("      } }")
    return "\n".join(lines)


def authorization_block(entries: Iterable[str]) -> str:
    """The nats-server ``authorization { users = [...] }`` block around ``user_entry`` texts."""
    users = ",\n".join(entries)
    return f"authorization {{\n  users = [\n{users}\n  ]\n}}\n"


def server_config(identities: dict[str, Identity], *, private_inboxes: bool = False) -> str:
    """The nats-server ``authorization { users = [...] }`` block for ``identities``."""
    return authorization_block(
        user_entry(
            ident.name,
            f"user: {json.dumps(ident.name)}, password: {json.dumps(ident.password)}",
            private_inboxes=private_inboxes,
        )
        for ident in identities.values()
    )


def identity_env(identity: Identity, *, private_inboxes: bool = False) -> dict[str, str]:
    """Environment variables that make a VaultMesh process connect as ``identity``."""
    env = {"VAULTMESH_NATS_USER": identity.name, "VAULTMESH_NATS_PASSWORD": identity.password}
    if private_inboxes:
        env["VAULTMESH_NATS_INBOX_PREFIX"] = inbox_prefix(identity.name)
    return env
