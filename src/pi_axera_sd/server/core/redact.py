"""Make anything logged safe and small: no image bytes, no credentials, no megabyte strings.

Clients put base64 images under many names (``init_image``, ``init_images``, ``mask``, ``image``,
ControlNet's ``input_image`` deep inside ``alwayson_scripts``...), and a message may quote a value,
so redaction looks at every string, not at known field names: a string that is base64 is replaced
whole, and inside any other string each ``data:`` URL (with or without ``;base64``) and each long
run of base64 characters is replaced. Strings are then cut to a length (``PI_AXERA_SD_LOG_MAX_STRING``).
"""

from __future__ import annotations

import re
from typing import Any

# Strings shorter than this are never treated as base64: the original service's own 1x1 PNG is 96 characters.
MIN_BASE64_CHARS = 64
# How much of a long string is inspected; enough to tell base64 from prose without scanning megabytes.
_SNIFF_CHARS = 512
_DATA_URI = re.compile(r"^\s*data:[^,]{0,200};base64,", re.IGNORECASE)
_BASE64_HEAD = re.compile(r"[A-Za-z0-9+/_\-\r\n]+={0,2}")
# Keys whose values are secrets whatever they hold (SillyTavern sends an ``auth`` field in the body).
_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|auth|credential|api[_-]?key|cookie", re.IGNORECASE)
_MAX_DEPTH = 32
# Inside a string: a data URL's payload, or a run of base64 characters long enough to be data. A
# run must mix upper case, lower case and digits, so hex digests and long words are kept.
_DATA_URL = re.compile(r"data:[\w.+/-]{0,100}(?:;[^,\s]{0,100})?,[^\s\"'<>]*", re.IGNORECASE)
_RUN = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_BASE64_CHARS},}}={{0,2}}")
_MIXED = (re.compile("[A-Z]"), re.compile("[a-z]"), re.compile("[0-9]"))
DEFAULT_MAX_CHARS = 300
_MAX_ITEMS = 32  # of one list or object: a log line shows the start of an 80,000-label request


def looks_like_base64(text: str) -> bool:
    """A data URI, or a long run of base64 characters with no spaces (prompts always have some)."""
    if _DATA_URI.match(text[:256]):
        return True
    if len(text) < MIN_BASE64_CHARS:
        return False
    # Padding only ends the string, so a prefix of real base64 matches the same pattern.
    return _BASE64_HEAD.fullmatch(text[:_SNIFF_CHARS].strip()) is not None


def base64_placeholder(text: str) -> str:
    return f"<base64 data, {len(text)} chars>"


def _run_placeholder(match: re.Match[str]) -> str:
    run = match.group(0)
    return base64_placeholder(run) if all(p.search(run) for p in _MIXED) else run


def clean_text(text: str, max_chars: int | None = DEFAULT_MAX_CHARS) -> str:
    """One string made safe to log: base64 (whole, embedded or in a data URL) replaced, then cut
    to ``max_chars`` (None: no cut) with the original length said."""
    if looks_like_base64(text):
        return base64_placeholder(text)
    truncated = max_chars is not None and len(text) > max_chars
    cut = text[:max_chars] if truncated else text
    cut = _RUN.sub(_run_placeholder, _DATA_URL.sub(lambda m: base64_placeholder(m.group(0)), cut))
    return f"{cut}...<{len(text)} chars>" if truncated else cut


def redact(value: Any, *, max_chars: int | None = None, _depth: int = 0) -> Any:
    """A copy of ``value`` (parsed JSON, or any logged structure) with base64 payloads and
    secret-named fields replaced and every string cut to ``max_chars``."""
    if _depth > _MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, str):
        return clean_text(value, max_chars)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index == _MAX_ITEMS:
                out["..."] = f"<{len(value)} keys>"
                break
            name = clean_text(key, max_chars) if isinstance(key, str) else key
            if isinstance(key, str) and _SECRET_KEY.search(key) and item not in (None, "", {}, []):
                out[name] = "<redacted>"
            else:
                out[name] = redact(item, max_chars=max_chars, _depth=_depth + 1)
        return out
    if isinstance(value, list | tuple):
        shown = [redact(item, max_chars=max_chars, _depth=_depth + 1) for item in value[:_MAX_ITEMS]]
        return shown if len(value) <= _MAX_ITEMS else [*shown, f"...<{len(value)} items>"]
    return value
