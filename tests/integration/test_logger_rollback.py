"""Rolling the log back, and where ``vaultmesh up`` keeps the key that signs it.

Real files in a temporary directory; the attacker edits them as issue 12 did:
drop the last entries and checkpoints, rebuild ROOT.txt from PROOFCHAIN.json.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.checkpoint import Checkpoint, parse_note
from vaultmesh.services.logger.entry import Incoming
from vaultmesh.services.logger.errors import CheckpointError
from vaultmesh.services.logger.local import LEGACY_KEY_FILE, local_env
from vaultmesh.services.logger.segments import list_segments
from vaultmesh.services.logger.signing import Signer, generate_key_file, load_signing_key
from vaultmesh.services.logger.trusted import Trusted, load_trusted
from vaultmesh.services.logger.verify import verify_dir
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.files import atomic_write

REPO = Path(__file__).resolve().parents[2]


def _open(data_dir: Path, clock: ManualClock) -> AuditLog:
    key = Path(local_env(data_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"])
    return AuditLog.open(
        data_dir, signer=Signer(load_signing_key(key)), clock=clock, log_id="t", segment_bytes=4096
    )


def _append(auditlog: AuditLog, clock: ManualClock, first: int, count: int, who: str) -> None:
    for seq in range(first, first + count):
        body = orjson.dumps({"n": seq, "who": who})
        auditlog.commit([Incoming("AUDIT", seq, subjects.audit("vault", "get"), body)])
        clock.advance(1)


def _log_with_trusted(tmp_path: Path) -> tuple[Path, Path, ManualClock]:
    """A log of 30 entries signed at 10, 20 and 30; ROOT.txt copied away at 20."""
    log_dir, clock = tmp_path / "data" / "logger", ManualClock()
    auditlog = _open(log_dir, clock)
    _append(auditlog, clock, 1, 10, "alice")
    auditlog.checkpoint()
    _append(auditlog, clock, 11, 10, "alice")
    auditlog.checkpoint()
    trusted = tmp_path / "seen-ROOT.txt"
    shutil.copy(log_dir / "ROOT.txt", trusted)
    _append(auditlog, clock, 21, 10, "alice")
    auditlog.checkpoint()
    auditlog.close()
    return log_dir, trusted, clock


def _roll_back(log_dir: Path, size: int) -> None:
    """What an attacker with the directory does: keep ``size`` entries and their checkpoints."""
    lines = b"".join(
        path.read_bytes() for _first, path in list_segments(log_dir / "segments")
    ).splitlines(keepends=True)
    for _first, path in list_segments(log_dir / "segments"):
        path.unlink()
    (log_dir / "segments" / "segment-000000000000.jsonl").write_bytes(b"".join(lines[:size]))
    chain = orjson.loads((log_dir / "PROOFCHAIN.json").read_bytes())
    chain["checkpoints"] = [c for c in chain["checkpoints"] if c["tree_size"] <= size]
    atomic_write(log_dir / "PROOFCHAIN.json", orjson.dumps(chain))
    latest = Checkpoint.from_json(chain["checkpoints"][-1])
    atomic_write(log_dir / "ROOT.txt", latest.note().encode())
    shutil.rmtree(log_dir / "tree")
    (log_dir / "state.json").unlink()


def test_a_rollback_verifies_alone_but_not_against_a_trusted_checkpoint(tmp_path: Path) -> None:
    log_dir, seen, _clock = _log_with_trusted(tmp_path)
    trusted = load_trusted(str(seen))
    assert verify_dir(log_dir, trusted=trusted).ok  # the genuine log extends it
    _roll_back(log_dir, 10)
    assert verify_dir(log_dir).ok  # the hole: nothing in the directory tells
    report = verify_dir(log_dir, trusted=trusted)
    assert not report.ok
    assert any(
        p.startswith("rolled back: the trusted checkpoint covers 20") for p in report.problems
    )


def test_a_rewritten_history_fails_even_when_re_signed(tmp_path: Path) -> None:
    """With the signing key (the old local `up` kept it in the log directory) ..."""
    log_dir, seen, clock = _log_with_trusted(tmp_path)
    _roll_back(log_dir, 10)
    forged = _open(log_dir, clock)  # the same key: the attacker re-signs
    _append(forged, clock, 11, 25, "mallory")
    forged.checkpoint()
    forged.close()
    assert verify_dir(log_dir).ok
    report = verify_dir(log_dir, trusted=load_trusted(str(seen)))
    assert not report.ok
    assert "is not an extension of the trusted checkpoint 20:" in " ".join(report.problems)


def test_a_genuine_extension_passes_in_every_form(tmp_path: Path) -> None:
    log_dir, seen, clock = _log_with_trusted(tmp_path)
    auditlog = _open(log_dir, clock)  # the logger keeps going after a restart
    _append(auditlog, clock, 31, 7, "alice")
    auditlog.checkpoint()
    auditlog.close()
    note = parse_note(seen.read_text())
    as_json = tmp_path / "checkpoint.json"
    as_json.write_bytes(orjson.dumps({"checkpoint": note.to_json(), "size": 20}))
    for spec in (str(seen), str(as_json), f"{note.tree_size}:{note.root_hash.hex()}"):
        report = verify_dir(log_dir, trusted=load_trusted(spec))
        assert report.ok, (spec, report.problems)
        assert report.trusted == f"20:{note.root_hash.hex()}"
    # The same size with another root is a fork.
    other = Trusted(20, bytes(32))
    assert "is not an extension" in " ".join(verify_dir(log_dir, trusted=other).problems)


def test_a_forged_trusted_checkpoint_file_is_refused(tmp_path: Path) -> None:
    log_dir, seen, _clock = _log_with_trusted(tmp_path)
    text = seen.read_text().replace("\n20\n", "\n21\n", 1)
    forged = tmp_path / "forged.txt"
    forged.write_text(text)
    report = verify_dir(log_dir, trusted=load_trusted(str(forged)))
    assert "the trusted checkpoint does not verify" in " ".join(report.problems)
    with pytest.raises(CheckpointError, match="neither SIZE:ROOT_HASH nor a readable file"):
        load_trusted(str(tmp_path / "missing"))
    (tmp_path / "junk.txt").write_text("hello\n")
    with pytest.raises(CheckpointError, match="not a signed checkpoint note"):
        load_trusted(str(tmp_path / "junk.txt"))


def test_cli_verify_trusted(tmp_path: Path) -> None:
    log_dir, seen, _clock = _log_with_trusted(tmp_path)

    def verify(*extra: str) -> subprocess.CompletedProcess[bytes]:
        argv = [sys.executable, "-m", "vaultmesh.cli.main", "logs", "verify", "--dir"]
        return subprocess.run(
            [*argv, str(log_dir), *extra], cwd=REPO, capture_output=True, timeout=60, check=False
        )

    good = verify("--trusted", str(seen))
    assert good.returncode == 0, good.stdout
    assert b"extends the trusted checkpoint 20:" in good.stdout
    assert b"latest checkpoint (keep it for --trusted): 30:" in good.stdout
    _roll_back(log_dir, 10)
    bad = verify("--trusted", str(seen))
    assert bad.returncode == 1, bad.stdout
    assert b"rolled back" in bad.stdout
    unusable = verify("--trusted", "nonsense")
    assert unusable.returncode == 2
    assert b"--trusted" in unusable.stderr


def test_local_up_keeps_the_signing_key_with_the_secrets(tmp_path: Path) -> None:
    log_dir = tmp_path / "data" / "logger"  # what `up` gives the logger
    log_dir.mkdir(parents=True)
    key = Path(local_env(log_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"])
    assert key.parent == tmp_path / "data" / "secrets"
    assert not key.is_relative_to(log_dir)
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o777 == 0o700
    first = key.read_bytes()
    assert local_env(log_dir) == {"VAULTMESH_LOGGER_SIGNING_KEY_FILE": str(key)}
    assert key.read_bytes() == first


def test_a_key_left_in_the_log_directory_is_moved_and_the_log_still_verifies(
    tmp_path: Path,
) -> None:
    log_dir, clock = tmp_path / "data" / "logger", ManualClock()
    old_key = log_dir / LEGACY_KEY_FILE  # where an earlier `up` kept it
    generate_key_file(old_key)
    old = Signer(load_signing_key(old_key))
    auditlog = AuditLog.open(log_dir, signer=old, clock=clock, log_id="t", segment_bytes=4096)
    _append(auditlog, clock, 1, 5, "alice")
    auditlog.checkpoint()
    auditlog.close()

    moved = Path(local_env(log_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"])
    assert not old_key.exists()
    assert moved.parent == tmp_path / "data" / "secrets"
    assert Signer(load_signing_key(moved)).key_id == old.key_id
    upgraded = _open(log_dir, clock)
    _append(upgraded, clock, 6, 5, "alice")
    upgraded.checkpoint()
    upgraded.close()
    report = verify_dir(log_dir)
    assert report.ok, report.problems
    assert (log_dir / "checkpoint.pub").read_text().count("BEGIN PUBLIC KEY") == 1
    assert not any(p.name.endswith(".key") for p in log_dir.rglob("*"))
