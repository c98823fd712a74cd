"""Structured JSON logging with the level taken from ``LOG_LEVEL``.

One line per record: time, level, logger, message and any ``extra`` fields.
Secrets must never be passed to a logger; ``REDACTED_KEYS`` is a last line of
defence that blanks well-known secret field names if one slips into ``extra``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

REDACTED_KEYS = frozenset(
    {"value", "secret", "password", "token", "master_key", "seed", "jwt", "creds", "authorization"}
)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
LEVELS = {"TRACE": logging.DEBUG, "WARN": logging.WARNING}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = "[redacted]" if key.lower() in REDACTED_KEYS else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def parse_level(level: str) -> int:
    """Map a level name (also the RUST_LOG style names) to a logging level."""
    name = level.strip().upper()
    if name in LEVELS:
        return LEVELS[name]
    resolved = logging.getLevelName(name)
    return resolved if isinstance(resolved, int) else logging.INFO


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send JSON logs for ``service`` to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(parse_level(level))
    # nats-py logs every reconnect attempt at error level with a traceback; keep it quieter.
    logging.getLogger("nats").setLevel(max(root.level, logging.WARNING))
