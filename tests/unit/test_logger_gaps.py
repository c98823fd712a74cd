"""Gap entries and checkpoint notes: building them, reading them back, refusing malformed ones."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vaultmesh.services.logger.checkpoint import parse_note, sign_checkpoint
from vaultmesh.services.logger.entry import Incoming, build_line, parse_line
from vaultmesh.services.logger.errors import CheckpointError
from vaultmesh.services.logger.gaps import Gap, gap_before, gap_note, gap_of, is_gap_entry
from vaultmesh.services.logger.signing import Signer
from vaultmesh.shared import subjects

RECEIVED = "2026-01-01T10:00:00.000000Z"


def _entry(gap: Gap) -> dict[str, Any]:
    return parse_line(build_line(7, RECEIVED, gap_note(gap, 1_767_261_600_000_000_000)))


def test_a_jump_is_a_gap_and_the_next_in_line_is_not() -> None:
    msg = Incoming("AUDIT", 9, "audit.vault.get", b"{}")
    assert gap_before(8, msg) is None
    assert gap_before(3, msg) == Gap("AUDIT", 4, 8)
    assert Gap("AUDIT", 4, 8).describe() == "AUDIT sequences 4..8"
    assert Gap("AUDIT", 5, 5).describe() == "AUDIT sequence 5"
    assert Gap("AUDIT", 4, 8).missing == 5


def test_a_gap_entry_is_its_own_critical_kind_and_reads_back() -> None:
    entry = _entry(Gap("AUDIT", 4, 8))
    assert entry["subject"] == subjects.LOGGER_STREAM_GAP
    assert (entry["kind"], entry["severity"], entry["stream"], entry["stream_seq"]) == (
        "gap",
        "critical",
        "AUDIT",
        8,
    )
    assert entry["payload"]["next_stored"] == "2026-01-01T10:00:00.000000Z"
    assert is_gap_entry(entry)
    assert gap_of(entry) == Gap("AUDIT", 4, 8)


@pytest.mark.parametrize(
    "change",
    [
        {"stream_seq": 9},  # does not end where the payload says
        {"stream": "EVENTS"},  # payload names another stream
        {"payload": None},
        {"payload": {"stream": "AUDIT", "from_seq": 9, "to_seq": 8}},
        {"payload": {"stream": "AUDIT", "from_seq": "4", "to_seq": 8}},
    ],
)
def test_malformed_gap_entries_are_refused(change: dict[str, Any]) -> None:
    assert gap_of({**_entry(Gap("AUDIT", 4, 8)), **change}) is None


def test_a_checkpoint_note_reads_back_and_junk_does_not() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    cp = sign_checkpoint(signer, "log", 12, bytes(range(32)), RECEIVED, None)
    assert parse_note(cp.note()) == cp
    for junk in ("", "hello\n", cp.note().replace("\u2014", "-"), cp.note().split("\n\n")[0]):
        with pytest.raises(CheckpointError):
            parse_note(junk)
    with pytest.raises(CheckpointError):
        parse_note(cp.note().replace(cp.root_hash.hex(), "zz" * 32))
