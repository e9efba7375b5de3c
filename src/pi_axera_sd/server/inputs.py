"""The edge every JSON request body passes through, once, before any route looks at it.

* The bytes must be UTF-8 (RFC 8259); anything else is a 400.
* Nesting depth and the number of values are measured on the raw bytes *before* parsing (a
  vectorised scan, so a 10,000-level body costs microseconds and never reaches Python's
  recursion limit); over a limit is a 400.
* ``NaN``, ``Infinity`` and numbers that overflow to infinity are a 400: JSON has no such values,
  and an echoed one would make the response unserialisable.
* Escaped lone surrogates (``"\\ud800"``) in keys and strings become U+FFFD (see
  :mod:`pi_axera_sd.safetext`): lenient, as the seed promises, and after this every parsed value
  can be serialised, logged, tokenised and stored.
"""

from __future__ import annotations

import codecs
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.safetext import valid_text

DEFAULT_MAX_DEPTH = 64  # A1111 bodies nest 5 levels (alwayson_scripts.ControlNet.args[0].x)
DEFAULT_MAX_ITEMS = 100_000
_CHUNK = 1 << 20  # bytes scanned per numpy pass: bounded temporaries, and the GIL is released between

_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")
_STEP = np.zeros(256, np.int8)  # +1 opens a level, -1 closes one; commas are marked apart
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_STRUCTURAL = np.zeros(256, bool)
_STRUCTURAL[[ord("["), ord("{"), ord("]"), ord("}"), _COMMA]] = True


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


def check_shape(raw: bytes, limits: JsonLimits) -> None:
    """Refuse a body nested deeper than ``max_depth`` or holding more than ``max_items`` values,
    without parsing it. Brackets and commas inside strings (escaped quotes included) do not count.
    Exact for every valid JSON prefix, which is all that matters: the parser stops at the first
    invalid byte, before any nesting that follows it."""
    data = np.frombuffer(raw, dtype=np.uint8)
    in_string = 0  # 1 when the previous chunk ended inside a string
    backslashes = 0
    depth = 0
    items = 0
    for start in range(0, len(data), _CHUNK):
        chunk = data[start : start + _CHUNK]
        quotes, backslashes = _real_quotes(chunk, backslashes)
        marks = np.flatnonzero(_STRUCTURAL[chunk])
        if len(marks):
            outside = (np.searchsorted(quotes, marks) + in_string) % 2 == 0
            marks = marks[outside]
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
        in_string = (in_string + len(quotes)) % 2


def _no_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a JSON number; send a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(f"number {text[:40]} is out of range")
    return value


def normalise(value: Any) -> Any:
    """Parsed JSON with every key and string made valid Unicode (depth already bounded)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_text(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    return value


def decode_json(raw: bytes, limits: JsonLimits = JsonLimits()) -> Any:
    """A request body as normalised JSON, or :class:`InvalidInput` saying what is wrong with it."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"request body is not UTF-8 (byte {exc.start}); send UTF-8 JSON") from None
    if not text.strip():
        raise InvalidInput("request body is empty; send a JSON object")
    check_shape(raw, limits)
    try:
        parsed = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # unreachable after check_shape; kept so it can never become a 500
        raise InvalidInput("request body is nested too deeply") from None
    except ValueError:
        raise InvalidInput("request body is not valid JSON") from None
    return normalise(parsed)
