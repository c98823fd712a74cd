"""The log on disk: segments, recovery, checkpoints, verification, queries, proofs.

Real files in a temporary directory; no bus.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from vaultmesh.services.logger import query
from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.config import LoggerSettings
from vaultmesh.services.logger.entry import Incoming
from vaultmesh.services.logger.errors import LogCorrupt, SigningKeyError
from vaultmesh.services.logger.local import local_env
from vaultmesh.services.logger.proofcheck import check_consistency, check_inclusion
from vaultmesh.services.logger.segments import list_segments
from vaultmesh.services.logger.signing import Signer, load_public_keys, load_signing_key
from vaultmesh.services.logger.verify import verify_dir
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.config import ConfigError, load_settings

NODES = ["n1", "n2", "n3"]


def _signer(data_dir: Path) -> Signer:
    env = local_env(data_dir)
    return Signer(load_signing_key(Path(env["VAULTMESH_LOGGER_SIGNING_KEY_FILE"])))


def _open(data_dir: Path, clock: ManualClock, segment_bytes: int = 4096) -> AuditLog:
    return AuditLog.open(
        data_dir / "log",
        signer=_signer(data_dir),
        clock=clock,
        log_id="test",
        segment_bytes=segment_bytes,
    )


def _audit(seq: int, severity: str = "info") -> Incoming:
    body = {"action": "get", "severity": severity, "node_id": NODES[seq % 3], "n": seq}
    return Incoming("AUDIT", seq, subjects.audit("vault", "get"), orjson.dumps(body))


def _event(seq: int) -> Incoming:
    body = {"severity": "error", "body": f"note {seq}"}
    return Incoming("EVENTS", seq, subjects.event("note", NODES[0]), orjson.dumps(body))


def _fill(auditlog: AuditLog, clock: ManualClock, audits: int, start: int = 1) -> None:
    for seq in range(start, start + audits):
        auditlog.commit([_audit(seq, "warning" if seq % 4 == 0 else "info")])
        clock.advance(60)


def _lines(log_dir: Path) -> list[dict[str, object]]:
    out = []
    for _first, path in list_segments(log_dir / "segments"):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return out


def test_dev_key_is_private_and_reused(data_dir: Path) -> None:
    env = local_env(data_dir)
    key = Path(env["VAULTMESH_LOGGER_SIGNING_KEY_FILE"])
    assert key.stat().st_mode & 0o777 == 0o600
    first = key.read_bytes()
    assert local_env(data_dir) == env
    assert key.read_bytes() == first


def test_bad_key_files_name_the_file_not_the_content(data_dir: Path) -> None:
    bad = data_dir / "bad.key"
    bad.write_bytes(b"SECRET-NOT-A-KEY")
    with pytest.raises(SigningKeyError, match=r"bad\.key") as info:
        load_signing_key(bad)
    assert "SECRET" not in str(info.value)
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_signing_key(data_dir / "missing.key")


def test_entries_rotate_into_segments_and_reopen_in_place(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock)
    _fill(auditlog, clock, 60)
    auditlog.close()
    segments = list_segments(data_dir / "log" / "segments")
    assert len(segments) > 3
    assert all(path.stat().st_size <= 4096 for _first, path in segments[:-1])
    reopened = _open(data_dir, clock)
    assert reopened.size == 60
    assert reopened.hwm("AUDIT") == 60
    assert [e["seq"] for e in _lines(data_dir / "log")] == list(range(60))
    reopened.close()


def test_redelivered_messages_are_not_written_twice(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock)
    assert auditlog.commit([_audit(1), _audit(2), _event(1)]).written == 3
    assert auditlog.commit([_audit(2), _event(1), _audit(3)]).written == 1
    auditlog.close()
    again = _open(data_dir, clock)  # marks are recovered from the entries themselves
    assert again.commit([_audit(1), _audit(3), _event(1), _event(2)]).written == 1
    assert [(e["stream"], e["stream_seq"]) for e in _lines(data_dir / "log")] == [
        ("AUDIT", 1),
        ("AUDIT", 2),
        ("EVENTS", 1),
        ("AUDIT", 3),
        ("EVENTS", 2),
    ]
    again.close()


def test_torn_tail_is_cut_on_open(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock, segment_bytes=1 << 20)
    _fill(auditlog, clock, 5)
    auditlog.checkpoint()
    _fill(auditlog, clock, 2, start=6)
    auditlog.close()
    _first, path = list_segments(data_dir / "log" / "segments")[-1]
    with path.open("ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"seq":7,"received":"2026-01-01T00:0')
    reopened = _open(data_dir, clock, segment_bytes=1 << 20)
    assert reopened.size == 7
    assert reopened.hwm("AUDIT") == 7
    assert path.read_bytes().endswith(b"}\n")
    assert reopened.commit([_audit(8)]).written == 1
    reopened.checkpoint()
    reopened.close()
    assert verify_dir(data_dir / "log").ok


def test_lost_tree_files_are_rebuilt_from_the_segments(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock)
    _fill(auditlog, clock, 40)
    cp = auditlog.checkpoint()
    assert cp is not None
    _fill(auditlog, clock, 5, start=41)
    auditlog.close()
    shutil.rmtree(data_dir / "log" / "tree")
    (data_dir / "log" / "state.json").unlink()
    reopened = _open(data_dir, clock)
    assert reopened.size == 45
    assert reopened.hwm("AUDIT") == 45
    proof = reopened.inclusion(3)
    assert proof["tree_size"] == 40
    assert proof["root_hash"] == cp.root_hash.hex()
    reopened.close()


def test_a_changed_signed_entry_is_never_laundered(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock, segment_bytes=1 << 20)
    _fill(auditlog, clock, 10)
    auditlog.checkpoint()
    auditlog.close()
    _first, path = list_segments(data_dir / "log" / "segments")[0]
    path.write_bytes(path.read_bytes().replace(b'"n":4', b'"n":5', 1))
    # With its tree files the logger keeps appending under the original hashes, so
    # later checkpoints still expose the change ...
    again = _open(data_dir, clock, segment_bytes=1 << 20)
    _fill(again, clock, 2, start=11)
    again.checkpoint()
    again.close()
    report = verify_dir(data_dir / "log")
    assert report.first_bad_seq == 3
    # ... and without them the rebuilt tree disagrees with the signed root: refused.
    shutil.rmtree(data_dir / "log" / "tree")
    with pytest.raises(LogCorrupt, match="do not match checkpoint"):
        _open(data_dir, clock, segment_bytes=1 << 20)


def test_a_log_shorter_than_its_checkpoint_is_refused(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock)
    _fill(auditlog, clock, 60)
    auditlog.checkpoint()
    auditlog.close()
    _first, last = list_segments(data_dir / "log" / "segments")[-1]
    last.unlink()
    with pytest.raises(LogCorrupt, match="checkpoint covers 60"):
        _open(data_dir, clock)


def _signed_log(data_dir: Path, audits: int = 30) -> Path:
    clock = ManualClock()
    auditlog = _open(data_dir, clock)
    for start in range(1, audits + 1, 10):
        _fill(auditlog, clock, 10, start=start)
        auditlog.checkpoint()
        clock.advance(1)
    auditlog.close()
    return data_dir / "log"


def test_verify_accepts_an_untouched_copy(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(_signed_log(data_dir), copy)
    report = verify_dir(copy)
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints, report.signed_size) == (30, 3, 30)


def test_verify_names_the_entry_with_one_changed_byte(data_dir: Path) -> None:
    log_dir = _signed_log(data_dir)
    target = next(e for e in _lines(log_dir) if e["seq"] == 17)
    for _first, path in list_segments(log_dir / "segments"):
        data = path.read_bytes()
        needle = f'"n":{target["stream_seq"]}}}'.encode()
        if needle in data:
            path.write_bytes(data.replace(needle, needle.replace(b'"n":', b'"n":9'), 1))
    report = verify_dir(log_dir)
    assert not report.ok
    assert report.first_bad_seq == 17
    assert "entry 17 was changed" in " ".join(report.problems)


def test_verify_without_tree_files_narrows_to_a_checkpoint_range(data_dir: Path) -> None:
    log_dir = _signed_log(data_dir)
    shutil.rmtree(log_dir / "tree")
    _first, path = list_segments(log_dir / "segments")[-1]
    data = bytearray(path.read_bytes())
    data[-5] = ord("7") if data[-5] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    report = verify_dir(log_dir)
    assert not report.ok
    assert report.first_bad_seq == 20
    assert "between 20 and 29" in " ".join(report.problems)


def test_verify_catches_checkpoint_tampering(data_dir: Path) -> None:
    log_dir = _signed_log(data_dir)
    chain = orjson.loads((log_dir / "PROOFCHAIN.json").read_bytes())
    chain["checkpoints"][1]["time"] = "2030-01-01T00:00:00.000000Z"
    (log_dir / "PROOFCHAIN.json").write_bytes(orjson.dumps(chain))
    problems = " ".join(verify_dir(log_dir).problems)
    assert "checkpoint #1 (tree size 20) has a bad signature" in problems
    assert "ROOT.txt" not in problems  # the latest is untouched


def test_verify_catches_a_dropped_checkpoint_and_a_stale_root(data_dir: Path) -> None:
    log_dir = _signed_log(data_dir)
    chain = orjson.loads((log_dir / "PROOFCHAIN.json").read_bytes())
    del chain["checkpoints"][1]
    (log_dir / "PROOFCHAIN.json").write_bytes(orjson.dumps(chain))
    (log_dir / "ROOT.txt").write_text("stale\n")
    problems = " ".join(verify_dir(log_dir).problems)
    assert "does not link" in problems
    assert "ROOT.txt is not the latest" in problems


def test_verify_with_the_wrong_public_key_fails(data_dir: Path, tmp_path: Path) -> None:
    log_dir = _signed_log(data_dir)
    other = tmp_path / "elsewhere" / "data"  # its own secrets dir, so its own key
    local_env(other)
    _open(other, ManualClock()).close()  # writes other/log/checkpoint.pub
    report = verify_dir(log_dir, other / "log" / "checkpoint.pub")
    assert not report.ok
    assert "unknown key" in " ".join(report.problems)
    assert len(load_public_keys(log_dir / "checkpoint.pub")) == 1


def test_verify_catches_a_doubled_entry(data_dir: Path) -> None:
    log_dir = _signed_log(data_dir)
    _first, path = list_segments(log_dir / "segments")[-1]
    lines = path.read_bytes().splitlines(keepends=True)
    doubled = orjson.loads(lines[-1])
    doubled["seq"] += 1
    path.write_bytes(b"".join(lines) + orjson.dumps(doubled) + b"\n")
    report = verify_dir(log_dir)
    assert not report.ok
    assert "repeats or reorders AUDIT sequence 30" in " ".join(report.problems)


def test_queries_filter_and_count(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock)
    _fill(auditlog, clock, 24)  # one a minute; every 4th a warning
    auditlog.commit([_event(1), _event(2)])
    snap = auditlog.snapshot()
    newest = query.view(snap, query.Filter(), 5, newest_first=True)
    assert [e["seq"] for e in newest] == [25, 24, 23, 22, 21]
    oldest = query.view(snap, query.Filter(kind="audit", node="n2"), 100, newest_first=False)
    assert [e["payload"]["n"] for e in oldest] == [1, 4, 7, 10, 13, 16, 19, 22]  # type: ignore[index]
    warnings = query.view(snap, query.Filter(min_severity="warning"), 100, newest_first=True)
    assert len(warnings) == 6 + 2
    start = orjson.loads(snap.line(0))["received"]
    window = query.Filter(since=start.replace("00:00:00", "00:10:00"))
    assert len(query.view(snap, window, 100, newest_first=False)) == 26 - 10
    until = query.Filter(until=start.replace("00:00:00", "00:04:59"))
    assert [e["seq"] for e in query.view(snap, until, 100, newest_first=True)] == [4, 3, 2, 1, 0]
    after = query.Filter(after_seq=20, subject="audit.>")
    assert [e["seq"] for e in query.view(snap, after, 100, newest_first=False)] == [21, 22, 23]
    stats = query.stats(snap, query.Filter())
    assert stats["total"] == 26
    assert stats["by_kind"] == {"audit": 24, "note": 2}
    assert stats["by_node"] == {"n1": 10, "n2": 8, "n3": 8}  # n1 has the two notes
    assert stats["by_severity"] == {"info": 18, "warning": 6, "error": 2}
    auditlog.close()


def test_proofs_from_the_log_verify_offline_and_fail_when_tampered(data_dir: Path) -> None:
    clock = ManualClock()
    auditlog = _open(data_dir, clock)
    _fill(auditlog, clock, 9)
    auditlog.checkpoint()
    _fill(auditlog, clock, 8, start=10)
    auditlog.checkpoint()
    keys = load_public_keys(data_dir / "log" / "checkpoint.pub")
    inclusion = auditlog.inclusion(4)
    assert inclusion["tree_size"] == 17
    assert check_inclusion(inclusion, keys) == []
    tampered = {**inclusion, "entry": inclusion["entry"].replace('"n":5', '"n":6')}
    assert check_inclusion(tampered, keys)
    consistency = auditlog.consistency(9)
    assert (consistency["first"], consistency["second"]) == (9, 17)
    assert check_consistency(consistency, keys) == []
    forged = {**consistency, "first_root": "00" * 32}
    assert check_consistency(forged, keys)
    auditlog.close()


def test_settings_refuse_an_unusable_key_before_connecting(data_dir: Path) -> None:
    bad = data_dir / "bad.key"
    bad.write_bytes(b"SECRET-NOT-A-KEY")
    with pytest.raises(ConfigError, match="VAULTMESH_LOGGER_SIGNING_KEY_FILE") as info:
        load_settings(LoggerSettings, data_dir=data_dir, logger_signing_key_file=bad)
    assert "SECRET" not in str(info.value)
    good = Path(local_env(data_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"])
    settings = load_settings(LoggerSettings, data_dir=data_dir, logger_signing_key_file=good)
    assert settings.logger_segment_bytes == 16 * 1024 * 1024
