"""Print a new vault master key: ``python scripts/generate_key.py > config/master.key``.

32 random bytes from the OS, standard base64 (44 characters), the format the
vault reads from ``VAULTMESH_VAULT_MASTER_KEY_FILE``, ``VAULTMESH_VAULT_MASTER_KEY``
or the Docker secret ``/run/secrets/vault_master_key`` (same as
``vaultmesh vault keygen``). Standard library only, so it runs anywhere.
Keep the file private: ``chmod 600 config/master.key``.
"""

from __future__ import annotations

import base64
import secrets
import sys

KEY_BYTES = 32


def new_key() -> str:
    """A new master key in its text form."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


if __name__ == "__main__":
    sys.stdout.write(new_key() + "\n")
