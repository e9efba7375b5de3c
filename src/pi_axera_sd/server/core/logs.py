"""One JSON object per log line on stderr, which journald stores as is.

Structured fields travel in ``extra={"fields": {...}}``; uvicorn's own messages come through the
same formatter so the journal holds nothing but JSON. Every string in a line (message, fields,
traceback) passes :func:`~pi_axera_sd.server.redact.redact`: no base64, no secrets, cut to
``PI_AXERA_SD_LOG_MAX_STRING`` characters (a traceback keeps its last lines, up to 16 times that).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pi_axera_sd.server.redact import DEFAULT_MAX_CHARS, clean_text, redact

ACCESS_LOGGER = "pi_axera_sd.access"


class JsonFormatter(logging.Formatter):
    def __init__(self, max_string: int = DEFAULT_MAX_CHARS) -> None:
        super().__init__()
        self.max_string = max_string

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": clean_text(record.getMessage(), self.max_string),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(redact(fields, max_chars=self.max_string))
        if record.exc_info:
            trace = self.formatException(record.exc_info)[-16 * self.max_string :]
            entry["exception"] = clean_text(trace, None)
        # A str subclass or a lone surrogate must not lose the line: backslashreplace, never raise.
        return json.dumps(entry, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace").decode()


def configure_logging(level: str = "info", max_string: int = DEFAULT_MAX_CHARS) -> None:
    """Route the root logger (and with it uvicorn's) to stderr: JSON lines (with a syslog priority
    prefix under journald), readable lines when stderr is a terminal; every string in a line is
    redacted and cut to ``max_string`` characters."""
    from pi_axera_sd.server.logformat import formatter_for

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(sys.stderr, JsonFormatter(max_string)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
