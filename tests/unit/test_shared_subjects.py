"""Subject construction: the only place subjects are built."""

from __future__ import annotations

from uuid import uuid4

import pytest

from vaultmesh.shared import subjects


def test_heartbeat_subject_round_trip() -> None:
    node = uuid4()
    subject = subjects.heartbeat(node)
    assert subject == f"fleet.heartbeat.{node}"
    assert subjects.node_from_heartbeat_subject(subject) == str(node)


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "", "a b", "x\n"])
def test_tokens_cannot_smuggle_wildcards_or_separators(bad: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        subjects.heartbeat(bad)
    with pytest.raises(ValueError, match="subject token"):
        subjects.vault(bad, "get")


def test_not_a_heartbeat_subject() -> None:
    with pytest.raises(ValueError, match="not a heartbeat subject"):
        subjects.node_from_heartbeat_subject("fleet.heartbeat.a.b")


def test_event_subjects() -> None:
    node = uuid4()
    assert subjects.event("note", node) == f"fleet.event.note.{node}"
    assert subjects.event("scan") == "fleet.event.scan._"
    assert subjects.event_filter(node_id=node) == f"fleet.event.*.{node}"


def test_vault_subjects() -> None:
    assert subjects.vault("agent7", "get") == "vault.agent7.get"
    assert subjects.vault_parts("vault.agent7.get") == ("agent7", "get")
    assert subjects.vault_principal_prefix("agent7") == "vault.agent7.>"
    with pytest.raises(ValueError, match="not a vault request subject"):
        subjects.vault_parts("vault.x")


def test_streams_capture_their_subjects() -> None:
    from vaultmesh.shared.streams import StreamLimits, audit_config, heartbeats_config

    limits = StreamLimits(heartbeat_history=5)
    assert heartbeats_config(limits).subjects == [subjects.HEARTBEAT_ALL]
    assert heartbeats_config(limits).max_msgs_per_subject == 5
    assert subjects.AUDIT_ALL in (audit_config(limits).subjects or [])


def test_a_uuid_and_its_text_give_the_same_subject() -> None:
    node = uuid4()
    assert subjects.heartbeat(node) == subjects.heartbeat(str(node)) == f"fleet.heartbeat.{node}"
