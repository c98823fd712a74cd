"""The master key: 32 random bytes, written as base64; never logged, sent or echoed.

Sources, first found wins: ``VAULTMESH_VAULT_MASTER_KEY_FILE``, then
``VAULTMESH_VAULT_MASTER_KEY``, then the Docker secret
``<VAULTMESH_VAULT_SECRETS_DIR>/<VAULTMESH_VAULT_MASTER_KEY_SECRET>``
(default ``/run/secrets/vault_master_key``). Errors name the source, never the content.

Changing the master key: start the vault with the new key as the master key and
the old one as the *previous* master key (``..._PREVIOUS_MASTER_KEY_FILE``,
``..._PREVIOUS_MASTER_KEY``, or the Docker secret ``vault_master_key_previous``);
the key terms it opens are sealed again under the new key (see ``Keyring.load``).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

from pydantic import SecretStr

from vaultmesh.services.vault.config import VaultSettings
from vaultmesh.shared.config import ConfigError
from vaultmesh.shared.files import create_private

KEY_BYTES = 32
FILE_VAR = "VAULTMESH_VAULT_MASTER_KEY_FILE"
ENV_VAR = "VAULTMESH_VAULT_MASTER_KEY"
PREVIOUS_FILE_VAR = "VAULTMESH_VAULT_PREVIOUS_MASTER_KEY_FILE"
PREVIOUS_ENV_VAR = "VAULTMESH_VAULT_PREVIOUS_MASTER_KEY"


def generate() -> bytes:
    """A new random master key."""
    return secrets.token_bytes(KEY_BYTES)


def encode(key: bytes) -> str:
    """The text form of ``key`` (standard base64, 44 characters)."""
    return base64.b64encode(key).decode("ascii")


def parse(text: str, source: str) -> bytes:
    """Decode a key from base64 (or 64 hex digits); ConfigError naming ``source`` otherwise."""
    cleaned = text.strip()
    try:
        if len(cleaned) == 2 * KEY_BYTES:
            key = bytes.fromhex(cleaned)
        else:
            key = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{source}: not a 256-bit key (expected 44 base64 or 64 hex characters; "
            "generate one with `vaultmesh vault keygen`)"
        )
    return key


def _read_file(path: Path, source: str) -> bytes:
    try:
        return parse(path.read_text(encoding="ascii"), source)
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{source}: cannot read the master key file {path}") from None


def _first_source(
    file: Path | None, value: SecretStr | None, secret: Path, file_var: str, env_var: str
) -> bytes | None:
    """The key from a file, else the variable's value, else the Docker secret; None if none."""
    if file is not None:
        return _read_file(file, file_var)
    if value is not None:
        return parse(value.get_secret_value(), env_var)
    if secret.is_file():
        return _read_file(secret, f"Docker secret {secret}")
    return None


def load(settings: VaultSettings) -> bytes:
    """The master key from the first configured source; ConfigError when there is none."""
    secret = settings.vault_secrets_dir / settings.vault_master_key_secret
    key = _first_source(
        settings.vault_master_key_file, settings.vault_master_key, secret, FILE_VAR, ENV_VAR
    )
    if key is None:
        raise ConfigError(
            f"no master key: set {FILE_VAR}, {ENV_VAR} or provide the Docker secret {secret}"
        )
    return key


def load_previous(settings: VaultSettings, master: bytes) -> bytes | None:
    """The previous master key, when one is configured and differs from ``master`` (the
    stack mounts the master key itself there by default); ConfigError when unreadable."""
    key = _first_source(
        settings.vault_previous_master_key_file,
        settings.vault_previous_master_key,
        settings.vault_secrets_dir / settings.vault_previous_master_key_secret,
        PREVIOUS_FILE_VAR,
        PREVIOUS_ENV_VAR,
    )
    if key is None or secrets.compare_digest(key, master):
        return None
    return key


def write_new(path: Path) -> None:
    """Create ``path`` holding a new key, mode 0600; never overwrites an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    create_private(path, (encode(generate()) + "\n").encode("ascii"))
