"""The secret files of ``stack.yml``: generated once, kept by the operator.

``generate(OUT_DIR)`` writes, only where missing (so re-running never rotates anything
by accident), files of mode 0600 in OUT_DIR (mode 0700):

- ``admin_tokens``, ``agent_tokens``: one random token each (gateway auth);
- ``vault_master_key``: the vault's 256-bit master key (base64);
- ``logger_signing_key``: the logger's Ed25519 checkpoint key;
- ``nats_seed_<identity>``: one NATS nkey seed per identity (``natsauth.BUILTIN``);
- ``nats_auth.conf``: the nats-server users (nkey public keys) with least-privilege
  permissions from ``natsauth.permissions_for``. It holds no secret, so it is written
  again on every run: a new release's grants reach it (``dockersecrets`` then makes it
  a new Docker secret);
- ``nats_cluster.conf``: route credentials and the route list of the 3-node cluster.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import nkeys

from vaultmesh.services.logger.signing import generate_key_file
from vaultmesh.services.vault import masterkey
from vaultmesh.shared import natsauth

IDENTITIES = natsauth.BUILTIN
ROUTE_USER = "route"
NATS_NODES = ("nats-1", "nats-2", "nats-3")
ROUTE_PORT = 6222
AUTH_CONF = "nats_auth.conf"


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 holding ``text`` (fails if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def new_seed() -> str:
    """A fresh NATS user nkey seed (``SU...``)."""
    return bytes(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)).decode()


def public_key(seed: str) -> str:
    """The public key (``U...``) of a user seed."""
    return bytes(nkeys.from_seed(bytearray(seed.encode())).public_key).decode()


def auth_config(seeds: dict[str, str]) -> str:
    """The ``authorization`` block included by config/nats/nats.conf.

    Each identity reads only its own reply inbox (VAULTMESH_NATS_INBOX_PREFIX in stack.yml).
    """

    def entry(name: str, seed: str) -> str:
        credential = f"nkey: {json.dumps(public_key(seed))}"
        return natsauth.user_entry(name, credential, private_inboxes=True)

    return natsauth.authorization_block(
        (entry(name, seed) for name, seed in seeds.items() if name != natsauth.MONITOR),
        (entry(name, seed) for name, seed in seeds.items() if name == natsauth.MONITOR),
    )


def cluster_config(password: str) -> str:
    """Route credentials and routes, included inside the ``cluster`` block."""
    routes = ", ".join(
        json.dumps(f"nats-route://{ROUTE_USER}:{password}@{node}:{ROUTE_PORT}")
        for node in NATS_NODES
    )
    return (
        f"authorization {{ user: {json.dumps(ROUTE_USER)}, password: {json.dumps(password)} }}\n"
        f"routes = [{routes}]\n"
    )


def _once(out: Path, name: str, make: Callable[[Path], None]) -> None:
    path = out / name
    if not path.exists():
        make(path)


def generate(out: Path) -> list[Path]:
    """Write every missing secret file into ``out``; return all secret files."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("admin_tokens", "agent_tokens"):
        _once(out, name, lambda p: write_private(p, secrets.token_urlsafe(32) + "\n"))
    _once(
        out, "vault_master_key", lambda p: write_private(p, masterkey.encode(masterkey.generate()))
    )
    _once(out, "logger_signing_key", generate_key_file)
    for identity in IDENTITIES:
        _once(out, f"nats_seed_{identity}", lambda p: write_private(p, new_seed() + "\n"))
    seeds = {i: (out / f"nats_seed_{i}").read_text().strip() for i in IDENTITIES}
    auth = out / AUTH_CONF
    auth.unlink(missing_ok=True)
    write_private(auth, auth_config(seeds))
    route_password = secrets.token_urlsafe(24)
    _once(out, "nats_cluster.conf", lambda p: write_private(p, cluster_config(route_password)))
    return sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
