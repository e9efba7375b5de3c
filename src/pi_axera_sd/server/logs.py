"""One JSON object per log line on stderr, which journald stores as is.

Structured fields travel in ``extra={"fields": {...}}``; uvicorn's own messages come through the
same formatter so the journal holds nothing but JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

ACCESS_LOGGER = "pi_axera_sd.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "info") -> None:
    """Route the root logger (and with it uvicorn's) to stderr: JSON lines (with a syslog priority
    prefix under journald), readable lines when stderr is a terminal."""
    from pi_axera_sd.server.logformat import formatter_for

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(sys.stderr, JsonFormatter()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
