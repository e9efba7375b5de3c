"""One JSON object per log line on stderr, which journald stores as is.

Structured fields travel in ``extra={"fields": {...}}``; uvicorn's own messages come through the
same formatter so the journal holds nothing but JSON. Every string in a line (message, fields,
traceback) passes :func:`~pi_axera_sd.server.core.redact.redact`: no base64, no secrets, cut to
``PI_AXERA_SD_LOG_MAX_STRING`` characters (a traceback keeps its last lines, up to 16 times that).

Which log format fits where stderr goes: readable lines on a terminal, JSON otherwise, and
under journald a ``<N>`` syslog priority prefix on each line so ``journalctl -p err`` shows errors
(journald strips the prefix; see systemd.exec(5), ``SyslogLevelPrefix=``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from pi_axera_sd.server.core.redact import DEFAULT_MAX_CHARS, clean_text, redact

ACCESS_LOGGER = "pi_axera_sd.access"
# A record's message is our own sentence (a fatal one ends with the command to run): it may be
# longer than one field's value, within bounds. Base64 is replaced in it as everywhere.
MESSAGE_CHARS_PER_FIELD_CHAR = 4


def message_of(record: logging.LogRecord, max_string: int) -> str:
    return clean_text(record.getMessage(), MESSAGE_CHARS_PER_FIELD_CHAR * max_string)


class JsonFormatter(logging.Formatter):
    def __init__(self, max_string: int = DEFAULT_MAX_CHARS) -> None:
        super().__init__()
        self.max_string = max_string

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": message_of(record, self.max_string),
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


# syslog priorities (sd-daemon(3)): err 3, warning 4, info 6, debug 7
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def syslog_priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class ConsoleFormatter(logging.Formatter):
    """``12:00:01 INFO  models loaded  model=tiny size=128x128`` for a person at a terminal."""

    def __init__(self, max_string: int = DEFAULT_MAX_CHARS) -> None:
        super().__init__()
        self.max_string = max_string

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} {message_of(record, self.max_string)}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            fields = redact(fields, max_chars=self.max_string)  # no image bytes on a terminal either
            line += "  " + " ".join(f"{k}={_short(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


class JournalPrefix(logging.Formatter):
    """Wraps another formatter: ``<3>{...}`` for an error line."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self.inner.format(record)}"


def stream_is_journal(stream: IO[str]) -> bool:
    """True when ``stream`` is the journald stream systemd set ``JOURNAL_STREAM`` for."""
    wanted = os.environ.get("JOURNAL_STREAM", "")
    if not wanted:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return wanted == f"{st.st_dev}:{st.st_ino}"


def formatter_for(stream: IO[str], json_formatter: logging.Formatter) -> logging.Formatter:
    if stream_is_journal(stream):
        return JournalPrefix(json_formatter)
    if hasattr(stream, "isatty") and stream.isatty():
        return ConsoleFormatter(getattr(json_formatter, "max_string", DEFAULT_MAX_CHARS))
    return json_formatter
