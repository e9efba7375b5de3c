"""The edge every JSON request body passes through, once, before any route looks at it.

* The bytes must be UTF-8 (RFC 8259); anything else is a 400.
* Nesting depth and the number of values are measured on the raw bytes *before* parsing (a
  vectorised scan, so a 10,000-level body costs microseconds and never reaches Python's
  recursion limit); over a limit is a 400.
* ``NaN``, ``Infinity``, numbers that overflow to infinity and integers of more than 100 digits
  are a 400: JSON has no such values, and an echoed one would make the response unserialisable.
* Escaped lone surrogates (``"\\ud800"``) in keys and strings become U+FFFD (see
  :mod:`pi_axera_sd.safetext`): lenient, as the original service promises, and after this every parsed value
  can be serialised, logged, tokenised and stored.

Large bodies are decoded on a host thread, and no step holds the GIL for long, so the event loop
keeps answering (``/health`` within 100 ms during a 45 MB body): the parser's C scanner would read
a 40 MB image string in one uninterruptible call, so strings longer than a few dozen bytes are cut
out of the text before parsing and decoded apart, a megabyte at a time.
"""

from __future__ import annotations

import codecs
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.safetext import valid_text

DEFAULT_MAX_DEPTH = 64  # A1111 bodies nest 5 levels (alwayson_scripts.ControlNet.args[0].x)
DEFAULT_MAX_ITEMS = 100_000
MAX_INTEGER_DIGITS = 100
_CHUNK = 1 << 20  # bytes per numpy pass or decode call: the GIL is released between them
# Strings longer than this (bytes, quotes included) are decoded apart from the parse; with at most
# ~2 strings per value, what the parser itself scans is bounded by 2 * max_items * this.
_LONG_STRING = 64
_ESCAPE_WINDOW = 12  # no backslash this close before a cut: no escape (or surrogate pair) is split

_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")
_STEP = np.zeros(256, np.int8)  # +1 opens a level, -1 closes one; commas are marked apart
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def _structural(chunk: np.ndarray) -> np.ndarray:
    """Offsets of brackets, braces and commas (compares: a table lookup is ten times slower)."""
    folded = chunk | 0x20  # "[" -> "{", "]" -> "}"
    return np.flatnonzero((folded == ord("{")) | (folded == ord("}")) | (chunk == _COMMA))


@dataclass(frozen=True)
class JsonLimits:
    max_depth: int = DEFAULT_MAX_DEPTH
    max_items: int = DEFAULT_MAX_ITEMS  # array elements and object members, all levels together


def _real_quotes(chunk: np.ndarray, backslashes: int) -> tuple[np.ndarray, int]:
    """Offsets of the unescaped quotes in ``chunk``, and the run of backslashes it ends with.
    ``backslashes`` is the run the previous chunk ended with."""
    if backslashes == 0 and _BACKSLASH not in chunk:  # the common case: no escapes at all
        return np.flatnonzero(chunk == _QUOTE), 0
    index = np.arange(len(chunk), dtype=np.int64)
    is_backslash = chunk == _BACKSLASH
    # Offset of the last non-backslash at or before each byte; a carried run starts before 0.
    last_plain = np.maximum.accumulate(np.where(is_backslash, -1 - backslashes, index))
    run_before = np.empty(len(chunk), dtype=np.int64)
    run_before[0] = backslashes
    run_before[1:] = index[:-1] - last_plain[:-1]
    quotes = np.flatnonzero((chunk == _QUOTE) & (run_before % 2 == 0))  # odd run: escaped
    return quotes, int(len(chunk) - 1 - last_plain[-1])


def check_shape(raw: bytes, limits: JsonLimits) -> list[tuple[int, int]]:
    """Refuse a body nested deeper than ``max_depth`` or holding more than ``max_items`` values,
    without parsing it; return the ``[start, end)`` byte spans of its long string literals.
    Brackets and commas inside strings (escaped quotes included) do not count. Exact for every
    valid JSON prefix, which is all that matters: the parser stops at the first invalid byte,
    before any nesting that follows it."""
    data = np.frombuffer(raw, dtype=np.uint8)
    open_at = -1  # offset of the quote that opened a string still open at the end of a chunk
    backslashes = 0
    depth = 0
    items = 0
    spans: list[tuple[int, int]] = []
    for start in range(0, len(data), _CHUNK):
        chunk = data[start : start + _CHUNK]
        quotes, backslashes = _real_quotes(chunk, backslashes)
        in_string = int(open_at >= 0)
        marks = _structural(chunk)
        if len(marks):
            marks = marks[(np.searchsorted(quotes, marks) + in_string) % 2 == 0]  # outside strings
            codes = chunk[marks]
            steps = _STEP[codes].astype(np.int64)
            levels = depth + np.cumsum(steps)
            if len(levels) and int(levels.max()) > limits.max_depth:
                raise InvalidInput(f"JSON nested deeper than {limits.max_depth} levels")
            items += int(np.count_nonzero(codes == _COMMA)) + int(np.count_nonzero(steps > 0))
            if items > limits.max_items:
                raise InvalidInput(f"JSON holds more than {limits.max_items} values")
            if len(levels):
                depth = int(levels[-1])
        # Quotes alternate open, close, open... across the whole body.
        bounds = quotes.astype(np.int64) + start
        if in_string:
            bounds = np.concatenate(([open_at], bounds))
        pairs = len(bounds) // 2
        opens, closes = bounds[0 : 2 * pairs : 2], bounds[1 : 2 * pairs : 2]
        long = closes - opens + 1 > _LONG_STRING
        spans.extend(zip(opens[long].tolist(), (closes[long] + 1).tolist(), strict=True))
        open_at = int(bounds[-1]) if len(bounds) % 2 else -1
    return spans


def _check_utf8(raw: bytes) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    for start in range(0, len(raw), _CHUNK):
        try:
            decoder.decode(view[start : start + _CHUNK], final=start + _CHUNK >= len(raw))
        except UnicodeDecodeError as exc:
            where = start + exc.start
            raise InvalidInput(f"request body is not UTF-8 (byte {where}); send UTF-8 JSON") from None


def _no_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a JSON number; send a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(f"number {text[:40]} is out of range")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise InvalidInput(f"an integer has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _parse(text: str | bytes) -> Any:
    # strict=False: raw control characters (a pasted newline) are accepted inside strings, long or
    # short alike (long ones are decoded without the parser).
    return json.loads(
        text, strict=False, parse_constant=_no_constant, parse_float=_finite, parse_int=_integer
    )


def _safe_cut(body: memoryview, start: int, end: int) -> int:
    """A cut at or before ``end`` that splits no escape and no UTF-8 sequence; ``len(body)`` when
    none is found nearby (the rest is then decoded in one piece)."""
    floor = start + _CHUNK // 2
    while end > floor:
        if b"\\" in bytes(body[max(0, end - _ESCAPE_WINDOW) : end]):
            end -= _ESCAPE_WINDOW
        elif 0x80 <= body[end] <= 0xBF:  # a UTF-8 continuation byte
            end -= 1
        else:
            return end
    return len(body)


def _decode_string(raw: bytes, start: int, end: int) -> str:
    """The string literal ``raw[start:end]`` (quotes included), a megabyte at a time."""
    body = memoryview(raw)[start + 1 : end - 1]  # no copy of a 40 MB image
    pieces = []
    at = 0
    while at < len(body):
        cut = len(body) if len(body) - at <= _CHUNK else _safe_cut(body, at, at + _CHUNK)
        piece = bytes(body[at:cut])
        pieces.append(_parse(b'"' + piece + b'"') if b"\\" in piece else piece.decode("utf-8"))
        at = cut
    return "".join(pieces)


def _normalise(value: Any, resolve: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return valid_text(resolve(value))
    if isinstance(value, dict):
        return {valid_text(resolve(k)): _normalise(v, resolve) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(item, resolve) for item in value]
    return value


def normalise(value: Any) -> Any:
    """Parsed JSON with every key and string made valid Unicode (its depth already bounded)."""
    return _normalise(value, lambda text: text)


def decode_json(raw: bytes, limits: JsonLimits = JsonLimits()) -> Any:
    """A request body as normalised JSON, or :class:`InvalidInput` saying what is wrong with it."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if not raw or raw.isspace():
        raise InvalidInput("request body is empty; send a JSON object")
    _check_utf8(raw)
    spans = check_shape(raw, limits)
    # Long strings leave the text; a placeholder no client can guess stands in for each.
    tag = f"\x00{secrets.token_hex(8)}:"
    parts: list[bytes] = []
    at = 0
    for index, (start, end) in enumerate(spans):
        parts += [raw[at:start], json.dumps(f"{tag}{index}").encode()]
        at = end
    skeleton = b"".join([*parts, raw[at:]]) if spans else raw

    def resolve(text: str) -> str:
        if not text.startswith(tag):
            return text
        start, end = spans[int(text[len(tag) :])]
        return _decode_string(raw, start, end)

    try:
        parsed = _parse(skeleton.decode("utf-8"))
        return _normalise(parsed, resolve)
    except RecursionError:  # unreachable after check_shape; kept so it can never become a 500
        raise InvalidInput("request body is nested too deeply") from None
    except ValueError:
        raise InvalidInput("request body is not valid JSON") from None
