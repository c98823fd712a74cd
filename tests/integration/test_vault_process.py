"""The vault as a real process: kill -9 safety, SIGHUP reload, its log, the CLI, key files."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_vault_helpers import (  # noqa: F401 (fixtures)
    TEST_ACL,
    AuthNats,
    auth_nats,
    vault_settings,
)
from vaultmesh.cli.main import main as cli
from vaultmesh.services.vault import local, masterkey
from vaultmesh.services.vault.acl import load_policy
from vaultmesh.shared import bus, subjects
from vaultmesh.shared.errors import Forbidden, VaultMeshError

ROOT = Path(__file__).resolve().parents[2]
SECRET = "correct-horse-battery-staple-7f3a"


class VaultProcess:
    """``python -m vaultmesh.services.vault`` with its log captured to a file."""

    def __init__(self, auth: AuthNats, data_dir: Path) -> None:
        settings = vault_settings(auth, data_dir)
        self.acl = settings.vault_acl_file
        self.key_file = settings.vault_master_key_file
        self.log = data_dir / "vault.log"
        self.env = {
            **os.environ,
            **auth.env("vault"),
            "PYTHONPATH": str(ROOT),
            "VAULTMESH_DATA_DIR": str(data_dir),
            "VAULTMESH_VAULT_MASTER_KEY_FILE": str(self.key_file),
            "VAULTMESH_VAULT_ACL_FILE": str(self.acl),
            "LOG_LEVEL": "DEBUG",
        }
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VaultProcess:
        """Start the process and wait until it answers."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vaultmesh.services.vault"],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        asyncio.run(self._wait_ready())
        return self

    async def _wait_ready(self, timeout: float = 30) -> None:
        nc = await self.auth.connect("admin")
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert self.proc is not None
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    await bus.request(nc, subjects.vault("admin", "status"), {}, timeout=1)
                    return
                except VaultMeshError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await bus.close(nc)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.proc.wait(20)


@pytest.fixture
def vault_process(auth_nats: AuthNats, data_dir: Path) -> Iterator[VaultProcess]:  # noqa: F811
    """A vault process (not started)."""
    proc = VaultProcess(auth_nats, data_dir)
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()


async def _set(nc: object, key: str, value: str) -> None:
    await bus.request(nc, subjects.vault("admin", "set"), {"key": key, "value": value}, timeout=3)  # type: ignore[arg-type]


def test_kill_9_during_writes_loses_no_acknowledged_write(
    vault_process: VaultProcess,
    auth_nats: AuthNats,  # noqa: F811
) -> None:
    vault_process.start()
    acked: dict[str, str] = {}

    async def write_until_killed() -> None:
        nc = await auth_nats.connect("admin")

        async def writer(w: int) -> None:
            for n in range(10_000):
                key, value = f"crash/{w}/{n}", f"value-{w}-{n}"
                try:
                    await _set(nc, key, value)
                except VaultMeshError:
                    return
                acked[key] = value

        async def killer() -> None:
            while len(acked) < 60:
                await asyncio.sleep(0.01)
            vault_process.signal(signal.SIGKILL)

        await asyncio.gather(killer(), *(writer(w) for w in range(4)))
        await bus.close(nc)

    asyncio.run(write_until_killed())
    assert vault_process.proc is not None
    assert vault_process.proc.wait(10) == -signal.SIGKILL
    vault_process.start()

    async def read_back() -> dict[str, str]:
        nc = await auth_nats.connect("admin")
        found = {}
        for key in acked:
            got = await bus.request(nc, subjects.vault("admin", "get"), {"key": key})
            found[key] = got["value"]
        await bus.close(nc)
        return found

    assert len(acked) >= 60
    assert asyncio.run(read_back()) == acked
    assert vault_process.stop() == 0


def test_cli_sighup_and_a_log_without_secrets(
    vault_process: VaultProcess,
    auth_nats: AuthNats,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vault_process.start()
    for name, value in auth_nats.env("admin").items():
        monkeypatch.setenv(name, value)

    # CLI: value from stdin (never echoed), get, list, status --json.
    monkeypatch.setattr(sys, "stdin", io.StringIO(SECRET + "\n"))
    assert cli(["vault", "set", "cli/secret", "-"]) == 0
    assert SECRET not in capsys.readouterr().out
    assert cli(["vault", "get", "cli/secret"]) == 0
    assert capsys.readouterr().out == SECRET + "\n"
    assert cli(["vault", "set", "--json", "cli/other", "x", "--cas", "0"]) == 0
    assert '"version": 1' in capsys.readouterr().out
    assert cli(["vault", "set", "cli/other", "y", "--cas", "0"]) == 5
    assert cli(["vault", "list", "cli/"]) == 0
    assert capsys.readouterr().out.split() == ["cli/other", "cli/secret"]
    assert cli(["vault", "status", "--json"]) == 0
    assert '"backend": "sqlite"' in capsys.readouterr().out
    assert cli(["vault", "get", "cli/missing"]) == 4
    # Bad input carrying the secret is refused without echoing it.
    assert cli(["vault", "set", "bad key with spaces", SECRET]) == 1
    assert SECRET not in capsys.readouterr().err

    # As bob: denied (exit 3) until the ACL is changed and SIGHUP'd.
    monkeypatch.setenv("VAULTMESH_NATS_USER", "bob")
    monkeypatch.setenv("VAULTMESH_NATS_PASSWORD", auth_nats.identities["bob"].password)
    assert cli(["vault", "--principal", "bob", "get", "cli/secret"]) == 3
    assert "Access denied" in capsys.readouterr().err
    assert vault_process.acl is not None
    vault_process.acl.write_text(
        TEST_ACL + "  - principal: bob\n    operations: [get]\n    keys: ['cli/*']\n"
    )
    vault_process.signal(signal.SIGHUP)
    asyncio.run(_until_bob_may_read(auth_nats))
    vault_process.acl.write_text("acl: [ {broken")
    vault_process.signal(signal.SIGHUP)
    time.sleep(0.5)  # nothing to wait for: a failed reload changes nothing observable but the log
    assert cli(["vault", "get", "cli/secret", "--principal", "bob"]) == 0
    assert capsys.readouterr().out == SECRET + "\n"

    assert vault_process.stop() == 0
    log = vault_process.log.read_text()
    assert '"msg": "ready"' in log.replace('":"', '": "')
    assert "ACL reloaded" in log
    assert "ACL reload failed" in log
    assert vault_process.key_file is not None
    for secret in (SECRET, vault_process.key_file.read_text().strip(), "cli/secret"):
        assert secret not in log
    for ident in auth_nats.identities.values():
        assert ident.password not in log


async def _until_bob_may_read(auth: AuthNats) -> None:
    nc = await auth.connect("bob")
    try:
        for _ in range(200):
            try:
                got = await bus.request(nc, subjects.vault("bob", "get"), {"key": "cli/secret"})
                assert got["value"] == SECRET
                return
            except Forbidden:
                await asyncio.sleep(0.05)
        pytest.fail("ACL not reloaded")
    finally:
        await bus.close(nc)


def test_generate_key_script_and_keygen(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/generate_key.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert len(masterkey.parse(out, "script")) == 32
    assert cli(["vault", "keygen"]) == 0
    first = capsys.readouterr().out
    assert cli(["vault", "keygen"]) == 0
    assert masterkey.parse(first, "cli") != masterkey.parse(capsys.readouterr().out, "cli")
    target = data_dir / "keys" / "master.key"
    assert cli(["vault", "keygen", "--out", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    before = target.read_text()
    assert cli(["vault", "keygen", "--out", str(target)]) == 1
    assert target.read_text() == before


def test_local_env_makes_a_private_dev_key_and_acl_once(data_dir: Path) -> None:
    env = local.local_env(data_dir / "vault")
    key = Path(env["VAULTMESH_VAULT_MASTER_KEY_FILE"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(masterkey.parse(key.read_text(), "dev")) == 32
    policy = load_policy(Path(env["VAULTMESH_VAULT_ACL_FILE"]))
    assert policy.may("admin", "rotate")
    assert policy.may("scheduler", "rotate")
    before = key.read_text()
    assert local.local_env(data_dir / "vault") == env
    assert key.read_text() == before
    assert local.MICRO_NAME == "vault"


def test_the_example_policy_file_loads() -> None:
    policy = load_policy(ROOT / "config" / "vault" / "acl.yaml")
    assert policy.allows("user", "set", "anything")
    assert not policy.allows("user", "set", "prod/db")
    assert policy.allows("admin", "set", "prod/db")
    assert policy.allows("ai-agent", "get", "agents/ai-agent/key")
    assert not policy.allows("ai-agent", "get", "agents/other/key")
