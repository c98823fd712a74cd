"""The stack's secret files: all of them, private, written once, and never printed."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vaultmesh.cli.main import main
from vaultmesh.ops import secretfiles
from vaultmesh.shared import natsauth

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "admin_tokens",
    "agent_tokens",
    "vault_master_key",
    "logger_signing_key",
    "nats_auth.conf",
    "nats_cluster.conf",
    *(f"nats_seed_{i}" for i in natsauth.BUILTIN),
}


def _contents(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in directory.iterdir()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_secret_file_is_written_private(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    files = secretfiles.generate(out)
    assert {p.name for p in files} == EXPECTED
    assert _mode(out) == 0o700
    assert {p.name: _mode(p) for p in files} == dict.fromkeys(EXPECTED, 0o600)


def test_a_second_run_rotates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    secretfiles.generate(out)
    first = _contents(out)
    secretfiles.generate(out)
    assert _contents(out) == first


def test_only_a_missing_file_is_made_again(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    secretfiles.generate(out)
    first = _contents(out)
    (out / "nats_seed_vault").unlink()
    secretfiles.generate(out)
    again = _contents(out)
    changed = {name for name in EXPECTED if again[name] != first[name]}
    # The vault's new seed, and the users file that names its public key.
    assert changed == {"nats_seed_vault", "nats_auth.conf"}
    assert _mode(out / "nats_seed_vault") == 0o600


def test_the_users_file_names_public_keys_not_seeds(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    secretfiles.generate(out)
    auth = (out / "nats_auth.conf").read_text()
    for identity in natsauth.BUILTIN:
        seed = (out / f"nats_seed_{identity}").read_text().strip()
        assert seed not in auth
        assert secretfiles.public_key(seed) in auth


def _assert_no_secret_in(text: str, out: Path) -> None:
    for name, content in _contents(out).items():
        if name == "nats_auth.conf":
            continue  # public keys only (test above)
        for line in content.splitlines():
            if len(line) >= 16:  # PEM armour lines are not secret
                assert line not in text, f"a line of {name} was printed"


def test_the_command_prints_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "secrets"
    assert main(["swarm", "secrets", str(out), "--files-only"]) == 0
    printed = capsys.readouterr()
    assert f"{len(EXPECTED)} secret files" in printed.out
    _assert_no_secret_in(printed.out + printed.err, out)


def test_the_old_script_does_the_same(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stack_secrets.py"), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert {p.name for p in out.iterdir()} == EXPECTED
    _assert_no_secret_in(done.stdout + done.stderr, out)
