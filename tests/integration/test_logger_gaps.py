"""Erasing audit records before the logger reads them leaves a signed, alarmed gap.

The attack of issue 12 against a real nats-server: pause the logger's durable
consumer, let records arrive, erase them from AUDIT (as an unrestricted
connection: purge and delete are refused by the stream's deny_purge and
deny_delete, so by shrinking its limits), unpause. The logger must write a gap
entry, count it, announce it, and ``logs verify`` must fail (and pass only with
``--accept-gaps``).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client
from nats.js.errors import APIError

from tests.integration.test_logger_service import (  # noqa: F401 (fixtures)
    ask,
    fresh_streams,
    logger,
    publish,
    wait_for_size,
)
from vaultmesh.services.logger.auditlog import AuditLog
from vaultmesh.services.logger.entry import Incoming
from vaultmesh.services.logger.local import local_env
from vaultmesh.services.logger.segments import list_segments
from vaultmesh.services.logger.service import LoggerService
from vaultmesh.services.logger.signing import Signer, load_signing_key
from vaultmesh.services.logger.verify import verify_dir
from vaultmesh.shared import subjects
from vaultmesh.shared.clock import ManualClock
from vaultmesh.shared.metrics import ServiceMetrics

REPO = Path(__file__).resolve().parents[2]
GAP_ALERT = subjects.audit("logger", "stream_gap")
PAUSE = f"{subjects.JS_API}.CONSUMER.PAUSE.{subjects.STREAM_AUDIT}.{subjects.DURABLE_LOGGER}"


async def pause_logger(nc: Client, paused: bool) -> None:
    """Pause (or resume) the logger's consumer on AUDIT, as the attacker did."""
    body = {"pause_until": "2099-01-01T00:00:00Z"} if paused else {}
    reply = orjson.loads((await nc.request(PAUSE, orjson.dumps(body), timeout=5)).data)
    assert reply.get("paused") is paused, reply


async def wait_until(check: Callable[[], Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def audit(nc: Client, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await publish(nc, subjects.audit("vault", "set" if n % 2 else "get"), {"n": n})


async def entries(nc: Client) -> list[dict[str, Any]]:
    return list((await ask(nc, "view", {"order": "oldest", "limit": 1000}))["entries"])


async def shrink(nc: Client, keep: int) -> None:
    """Cut AUDIT to its last ``keep`` records and restore its limits, as a JetStream admin
    could (purge and message delete are refused for good: AUDIT denies them)."""
    js = nc.jetstream()
    config = (await js.stream_info(subjects.STREAM_AUDIT)).config
    limit = config.max_msgs
    config.max_msgs = keep
    await js.update_stream(config)
    config.max_msgs = limit
    await js.update_stream(config)


async def erase_by_limits(nc: Client) -> tuple[int, int]:
    """Records 4..6 arrive while the consumer is paused; the stream keeps only the last."""
    await audit(nc, 4, 6)
    await shrink(nc, 1)
    return 4, 5


async def erase_refused(nc: Client) -> None:
    """Purge and message delete of AUDIT are refused, whoever asks."""
    js = nc.jetstream()
    with pytest.raises(APIError):
        await js.purge_stream(subjects.STREAM_AUDIT)
    with pytest.raises(APIError):
        await js.delete_msg(subjects.STREAM_AUDIT, 1)


@pytest.mark.parametrize("erase", [erase_by_limits], ids=["limits"])
async def test_erased_audit_records_leave_a_signed_alarmed_gap(
    logger: tuple[LoggerService, ServiceMetrics],  # noqa: F811
    nc: Client,
    data_dir: Path,
    erase: Callable[[Client], Any],
) -> None:
    service, metrics = logger
    await audit(nc, 1, 3)
    await wait_for_size(service, 3)
    await pause_logger(nc, True)
    first, last = await erase(nc)
    await pause_logger(nc, False)
    await audit(nc, 7, 8)

    async def alert_logged() -> bool:
        return any(e["subject"] == GAP_ALERT for e in await entries(nc))

    await wait_until(alert_logged, "the logger's gap alert to be captured")
    logged = await entries(nc)
    gap_at = next(i for i, e in enumerate(logged) if e["subject"] == subjects.LOGGER_STREAM_GAP)
    gap = logged[gap_at]
    assert (gap["kind"], gap["severity"], gap["stream"]) == ("gap", "critical", "AUDIT")
    assert (gap["payload"]["from_seq"], gap["payload"]["to_seq"]) == (first, last)
    assert gap["stream_seq"] == last
    assert logged[gap_at + 1]["stream_seq"] == last + 1  # the record after the hole
    captured = {e["stream_seq"] for e in logged if e["subject"].startswith("audit.vault.")}
    assert not captured & set(range(first, last + 1))
    alert = next(e for e in logged if e["subject"] == GAP_ALERT)
    assert alert["severity"] == "critical"
    assert alert["payload"]["detail"]["log_seq"] == gap["seq"]
    assert (alert["payload"]["detail"]["from_seq"], alert["payload"]["detail"]["to_seq"]) == (
        first,
        last,
    )
    sample = metrics.registry.get_sample_value
    assert (
        sample("vaultmesh_logger_stream_gaps_total", {"service": "logger", "stream": "AUDIT"}) == 1
    )
    missing = {"service": "logger", "stream": "AUDIT"}
    assert sample("vaultmesh_logger_missing_messages_total", missing) == last - first + 1
    # The gap entry is signed at once, not at the next interval (an hour here).
    assert service.log.chain.latest is not None
    assert service.log.chain.latest.tree_size > gap["seq"]

    report = verify_dir(data_dir / "log")
    assert not report.ok
    described = f"AUDIT sequence {first}" if first == last else f"AUDIT sequences {first}..{last}"
    assert f"{described} missing from the stream (gap recorded in entry {gap['seq']})" in " ".join(
        report.problems
    )
    assert report.first_bad_seq == gap["seq"]
    accepted = verify_dir(data_dir / "log", accept_gaps=True)
    assert accepted.ok, accepted.problems
    assert accepted.gaps == [
        {"stream": "AUDIT", "from_seq": first, "to_seq": last, "missing": last - first + 1}
        | {"seq": gap["seq"], "signed": True}
    ]
    assert any("accepted" in w for w in accepted.warnings)


async def test_the_gap_is_also_an_incident_event(
    logger: tuple[LoggerService, ServiceMetrics],  # noqa: F811
    nc: Client,
) -> None:
    service, _metrics = logger
    await audit(nc, 1, 2)
    await wait_for_size(service, 2)
    await pause_logger(nc, True)
    await audit(nc, 3, 4)
    await erase_refused(nc)
    await shrink(nc, 1)
    await pause_logger(nc, False)
    await audit(nc, 5, 5)

    async def incident_logged() -> bool:
        return any(e["kind"] == "incident" for e in await entries(nc))

    await wait_until(incident_logged, "the incident event to be captured from EVENTS")
    incident = next(e for e in await entries(nc) if e["kind"] == "incident")
    assert incident["subject"] == subjects.event("incident")
    assert incident["severity"] == "critical"
    assert incident["payload"]["author"] == "logger"
    assert (incident["payload"]["data"]["from_seq"], incident["payload"]["data"]["to_seq"]) == (
        3,
        3,
    )


def _signer(data_dir: Path) -> Signer:
    return Signer(load_signing_key(Path(local_env(data_dir)["VAULTMESH_LOGGER_SIGNING_KEY_FILE"])))


def _open(data_dir: Path) -> AuditLog:
    return AuditLog.open(
        data_dir / "log",
        signer=_signer(data_dir),
        clock=ManualClock(),
        log_id="t",
        segment_bytes=1 << 20,
    )


def _record(seq: int) -> Incoming:
    return Incoming("AUDIT", seq, subjects.audit("vault", "get"), orjson.dumps({"n": seq}))


def test_a_jump_committed_to_the_log_is_always_recorded(data_dir: Path) -> None:
    auditlog = _open(data_dir)
    committed = auditlog.commit([_record(1), _record(2), _record(6), _record(7)])
    assert committed.written == 4
    assert [(seq, gap.describe()) for seq, gap in committed.gaps] == [(2, "AUDIT sequences 3..5")]
    auditlog.close()
    reopened = _open(data_dir)
    assert reopened.hwm("AUDIT") == 7
    # Not yet signed: not accepted even with accept_gaps.
    report = verify_dir(data_dir / "log", accept_gaps=True)
    assert "not signed yet, so it cannot be accepted" in " ".join(report.problems)
    reopened.checkpoint()
    reopened.close()
    assert verify_dir(data_dir / "log", accept_gaps=True).ok


def test_verify_fails_on_a_silent_jump(data_dir: Path) -> None:
    """A log that skips stream sequences without a gap entry (as the old logger wrote it)."""
    auditlog = _open(data_dir)
    auditlog.commit([_record(n) for n in (1, 2, 3, 6)])
    auditlog.close()
    # Remove the gap entry and re-sign as the old logger would have: a clean-looking log.
    (_first, path) = list_segments(data_dir / "log" / "segments")[0]
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    kept = [e for e in lines if e["subject"] != subjects.LOGGER_STREAM_GAP]
    for seq, entry in enumerate(kept):
        entry["seq"] = seq
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in kept))
    shutil.rmtree(data_dir / "log" / "tree")
    (data_dir / "log" / "state.json").unlink(missing_ok=True)
    resigned = _open(data_dir)
    resigned.checkpoint()
    resigned.close()
    report = verify_dir(data_dir / "log", accept_gaps=True)
    assert not report.ok
    assert "entry 3 jumps over AUDIT sequences 4..5 and no gap entry records it" in report.problems


def test_cli_verify_fails_on_a_gap_and_accepts_it_when_told(data_dir: Path) -> None:
    auditlog = _open(data_dir)
    auditlog.commit([_record(1), _record(4)])
    auditlog.checkpoint()
    auditlog.close()

    def verify(*extra: str) -> subprocess.CompletedProcess[bytes]:
        argv = [sys.executable, "-m", "vaultmesh.cli.main", "logs", "verify"]
        return subprocess.run(
            [*argv, "--dir", str(data_dir / "log"), *extra],
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=False,
        )

    failed = verify()
    assert failed.returncode == 1, failed.stdout
    assert (
        b"AUDIT sequences 2..3 missing from the stream (gap recorded in entry 1)" in failed.stdout
    )
    accepted = verify("--accept-gaps", "--json")
    assert accepted.returncode == 0, accepted.stdout
    report = orjson.loads(accepted.stdout)
    assert report["gaps"][0]["from_seq"] == 2
    assert report["ok"] is True
