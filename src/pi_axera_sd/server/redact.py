"""Make request parameters safe to log: no image bytes, no credentials.

Clients put base64 images under many names (``init_image``, ``init_images``, ``mask``, ``image``,
ControlNet's ``input_image`` deep inside ``alwayson_scripts``...), so redaction looks at every
string in the body, not at known field names.
"""

from __future__ import annotations

import re
from typing import Any

# Strings shorter than this are never treated as base64: the seed's own 1x1 PNG is 96 characters.
MIN_BASE64_CHARS = 64
# How much of a long string is inspected; enough to tell base64 from prose without scanning megabytes.
_SNIFF_CHARS = 512
_DATA_URI = re.compile(r"^\s*data:[^,]{0,200};base64,", re.IGNORECASE)
_BASE64_HEAD = re.compile(r"[A-Za-z0-9+/_\-\r\n]+={0,2}")
# Keys whose values are secrets whatever they hold (SillyTavern sends an ``auth`` field in the body).
_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|auth|credential|api[_-]?key|cookie", re.IGNORECASE)
_MAX_DEPTH = 32


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


def redact(value: Any, *, _depth: int = 0) -> Any:
    """A copy of ``value`` (parsed JSON) with base64 payloads and secret-named fields replaced."""
    if _depth > _MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, str):
        return base64_placeholder(value) if looks_like_base64(value) else value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and _SECRET_KEY.search(key) and item not in (None, "", {}, []):
                out[key] = "<redacted>"
            else:
                out[key] = redact(item, _depth=_depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [redact(item, _depth=_depth + 1) for item in value]
    return value
