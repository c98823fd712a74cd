"""JSON logging."""

from __future__ import annotations

import json
import logging

from vaultmesh.shared.logs import JsonFormatter, parse_level


def _format(**extra: object) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",), "levelno": 20})
    record.levelname = "INFO"
    for key, value in extra.items():
        setattr(record, key, value)
    return dict(json.loads(JsonFormatter("svc").format(record)))


def test_one_json_object_per_record() -> None:
    entry = _format(node_id="n1")
    assert entry["msg"] == "hello world"
    assert entry["service"] == "svc"
    assert entry["node_id"] == "n1"
    assert str(entry["ts"]).endswith("+00:00")


def test_secret_named_fields_are_redacted() -> None:
    entry = _format(password="hunter2", value="v")
    assert entry["password"] == "[redacted]"
    assert entry["value"] == "[redacted]"


def test_rust_log_style_levels() -> None:
    assert parse_level("warn") == logging.WARNING
    assert parse_level("trace") == logging.DEBUG
    assert parse_level("error") == logging.ERROR
    assert parse_level("nonsense") == logging.INFO
