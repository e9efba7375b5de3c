"""Which log format fits where stderr goes: readable lines on a terminal, JSON otherwise, and
under journald a ``<N>`` syslog priority prefix on each line so ``journalctl -p err`` shows errors
(journald strips the prefix; see systemd.exec(5), ``SyslogLevelPrefix=``).
"""

from __future__ import annotations

import json
import logging
import os
from typing import IO, Any

from pi_axera_sd.server.redact import DEFAULT_MAX_CHARS, redact

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
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
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
