"""Only the logger may append to its replicated log; it may read it, but not administer it."""

from __future__ import annotations

import pytest

from vaultmesh.shared import natsauth, provision, streams, subjects

OTHERS = [n for n in natsauth.BUILTIN if n not in ("logger", natsauth.PROVISIONER)]
WRITES = (subjects.LOGGER_LOG_ENTRIES, subjects.LOGGER_LOG_CHECKPOINT, subjects.LOGGER_LOG_WRITER)


def may_publish(name: str, subject: str) -> bool:
    grants = natsauth.permissions_for(name)
    allowed = any(subjects.subject_matches(p, subject) for p in grants.publish)
    denied = any(subjects.subject_matches(p, subject) for p in grants.deny_publish)
    return allowed and not denied


@pytest.mark.parametrize("name", [*OTHERS, "ai-agent"])
def test_no_other_identity_may_append_to_the_log(name: str) -> None:
    assert not any(may_publish(name, subject) for subject in WRITES)


def test_the_logger_appends_and_reads_back_but_creates_nothing() -> None:
    log = subjects.STREAM_LOGGER_LOG
    assert all(may_publish("logger", subject) for subject in WRITES)
    assert may_publish("logger", subjects.js_direct_get(log))
    assert may_publish("logger", f"{subjects.JS_API}.STREAM.INFO.{log}")
    for verb in ("CREATE", "UPDATE", "DELETE", "PURGE"):
        assert not may_publish("logger", f"{subjects.JS_API}.STREAM.{verb}.{log}")


def test_the_provisioning_step_creates_it_kept_for_ever() -> None:
    configs = {c.name: c for c in provision.stream_configs(streams.StreamLimits(replicas=3))}
    config = configs[subjects.STREAM_LOGGER_LOG]
    assert config.num_replicas == 3
    assert config.deny_delete
    assert config.deny_purge
    assert [config.max_age, config.max_msgs, config.max_bytes] == [None, None, None]
