"""Time specs and the logs service's request models: bad input gets a clear error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vaultmesh.services.logger import timespec
from vaultmesh.services.logger.models import ProofRequest, StatsRequest, ViewRequest
from vaultmesh.shared.errors import BadRequest
from vaultmesh.shared.validation import parse

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1h", "2026-03-01T11:00:00.000000Z"),
        ("90s", "2026-03-01T11:58:30.000000Z"),
        ("-2d", "2026-02-27T12:00:00.000000Z"),
        ("-1w", "2026-02-22T12:00:00.000000Z"),
        ("now", "2026-03-01T12:00:00.000000Z"),
        ("2026-01-01", "2026-01-01T00:00:00.000000Z"),
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00.000000Z"),
        ("2026-01-01T12:00:00+02:00", "2026-01-01T10:00:00.000000Z"),
    ],
)
def test_time_specs(text: str, expected: str) -> None:
    assert timespec.resolve(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "not a time"),
        ("-1y", "not a time"),
        ("+1h", "not a time"),
        ("2026-01-01T10:00:00", "no time zone"),
        ("2026-13-01", "not a time"),
    ],
)
def test_bad_time_specs(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        timespec.parse(text, NOW)


def test_view_defaults() -> None:
    req = parse(ViewRequest, {})
    assert (req.limit, req.order, req.since) == (100, "newest", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"since": "last tuesday"}, "since"),
        ({"until": "2026-01-01T00:00:00"}, "until"),
        ({"limit": -1}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"min_severity": "loud"}, "min_severity"),
        ({"order": "random"}, "order"),
        ({"subject": "audit.>.x"}, "subject"),
        ({"subject": "a b"}, "subject"),
        ({"after_seq": -2}, "after_seq"),
        ({"kind": ""}, "kind"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_view_requests_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        parse(ViewRequest, body)


def test_stats_window_defaults_to_a_day() -> None:
    assert parse(StatsRequest, {}).since == "-24h"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"type": "inclusion"},
        {"type": "inclusion", "seq": 1, "first": 1},
        {"type": "consistency"},
        {"type": "consistency", "first": 1, "seq": 2},
        {"type": "consistency", "first": 0},
        {"type": "inclusion", "seq": -1},
        {"type": "inclusion", "seq": 1, "tree_size": 0},
        {"type": "other", "seq": 1},
    ],
)
def test_bad_proof_requests(body: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        parse(ProofRequest, body)


def test_good_proof_requests() -> None:
    assert parse(ProofRequest, {"seq": 3}).type == "inclusion"
    assert parse(ProofRequest, {"type": "consistency", "first": 2, "second": 9}).second == 9
