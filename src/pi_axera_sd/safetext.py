"""Text that every encoder accepts: no lone UTF-16 surrogates.

JSON allows ``"\\ud800"`` (an escaped surrogate with no partner), and Python's ``json`` turns it
into a ``str`` that cannot be encoded as UTF-8: the Rust tokenizer, ``json.dumps(...).encode()``
and PNG text chunks all raise on it. Such code points are replaced with U+FFFD, the Unicode
replacement character, as a decoder does with malformed input.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (the same object when it has none)."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text
