"""Attention weights ``(x)``, ``[x]``, ``(x:1.3)`` and ``BREAK``: AUTOMATIC1111's "Original" emphasis.

Runs on one scheduled text (after ``schedule.py``) and gives its BREAK-separated segments, each a list
of ``(text, weight)`` pieces ready to tokenize. Weights are built the way A1111 builds them: every piece
starts at 1.0 and each closing bracket multiplies the pieces since its opener (inner brackets first),
so the float results match A1111's to the last bit (``((house:1.3))`` is 1.0 * 1.3 * 1.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND_MULTIPLIER = 1.1  # "(x)"
SQUARE_MULTIPLIER = 1 / 1.1  # "[x]": a multiplication by the inverse, as A1111 does (not a division)

# ":" weight ")" closing a "(x:w)"; the weight is checked with float() before it is used.
_WEIGHT = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
# Plain text: everything up to the next character the emphasis language reads.
_PLAIN = re.compile(r"[^\\()\[\]:]+")
# BREAK as a whole word; the whitespace around it is stripped by hand (a leading \s* in the pattern
# would rescan long whitespace runs from every position).
_BREAK = re.compile(r"\bBREAK\b")
_ESCAPABLE = "()[]\\"
# Brackets open at once beyond this are read as text: every piece is multiplied once per bracket
# open around it, so this bounds the work to _MAX_OPEN per piece (a 1.1**100 weight is noise anyway).
_MAX_OPEN = 100


@dataclass(slots=True)
class _Piece:
    """Text whose weight is built up; its parts are joined once at the end (no quadratic +=)."""

    texts: list[str]
    weight: float = 1.0


class _Pieces:
    """The pieces in order, None standing for a BREAK (it has no weight to multiply).

    Text read with no bracket opened or closed since the last piece joins that piece: the same
    brackets enclose both, so their weights could never differ, and fewer pieces mean fewer
    multiplications.
    """

    def __init__(self) -> None:
        self.items: list[_Piece | None] = []
        self.joinable = False

    def text(self, text: str) -> None:
        last = self.items[-1] if self.joinable else None
        if last is not None:
            last.texts.append(text)
        else:
            self.items.append(_Piece([text]))
            self.joinable = True

    def brk(self) -> None:
        self.items.append(None)
        self.joinable = False

    def mark(self) -> int:
        """Where a bracket opened now starts."""
        self.joinable = False
        return len(self.items)

    def multiply(self, start: int, factor: float) -> None:
        """A closing bracket: every piece since its opener times its factor."""
        self.joinable = False
        for index in range(start, len(self.items)):
            piece = self.items[index]
            if piece is not None:
                piece.weight *= factor


def _split_break(run: str) -> list[str]:
    """The run's parts between BREAKs, the whitespace next to each BREAK swallowed."""
    parts: list[str] = []
    start = 0
    for match in _BREAK.finditer(run):
        part = run[start : match.start()].rstrip()
        parts.append(part.lstrip() if parts else part)
        start = match.end()
    last = run[start:]
    parts.append(last.lstrip() if parts else last)
    return parts


def parse_emphasis(text: str) -> list[list[tuple[str, float]]]:
    """The text's BREAK-separated segments, each a list of ``(text, weight)`` pieces.

    Adjacent pieces of equal weight are merged; a text that yields nothing gives ``[[("", 1.0)]]``.
    An empty piece next to a BREAK is kept, so a leading BREAK makes an empty first segment.
    """
    pieces = _Pieces()
    round_open: list[int] = []  # where in the pieces each unclosed "(" / "[" started
    square_open: list[int] = []
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char == "\\":
            # \( \) \[ \] \\ give the character; any other backslash stays a backslash
            if pos + 1 < end and text[pos + 1] in _ESCAPABLE:
                pieces.text(text[pos + 1])
                pos += 2
            else:
                pieces.text("\\")
                pos += 1
        elif char in "([":
            if len(round_open) + len(square_open) >= _MAX_OPEN:
                pieces.text(char)
            else:
                (round_open if char == "(" else square_open).append(pieces.mark())
            pos += 1
        elif char == ":":
            match = _WEIGHT.match(text, pos)
            weight = _float(match.group(1)) if match is not None and round_open else None
            if match is not None and weight is not None:
                pieces.multiply(round_open.pop(), weight)
                pos = match.end()
            else:  # not a weight: the colon is text, and what follows is read as usual
                pieces.text(":")
                pos += 1
        elif char == ")" and round_open:
            pieces.multiply(round_open.pop(), ROUND_MULTIPLIER)
            pos += 1
        elif char == "]" and square_open:
            pieces.multiply(square_open.pop(), SQUARE_MULTIPLIER)
            pos += 1
        elif char in ")]":  # a closer without its opener is text
            pieces.text(char)
            pos += 1
        else:
            match = _PLAIN.match(text, pos)
            assert match is not None  # char is none of the special ones
            for i, part in enumerate(_split_break(match.group())):
                if i:
                    pieces.brk()
                pieces.text(part)
            pos = match.end()
    # unclosed brackets reach to the end: all "(" first, then all "[", in the order opened (A1111's)
    for start in round_open:
        pieces.multiply(start, ROUND_MULTIPLIER)
    for start in square_open:
        pieces.multiply(start, SQUARE_MULTIPLIER)
    if not pieces.items:
        return [[("", 1.0)]]

    # merge runs of exactly equal weights
    segments: list[list[tuple[str, float]]] = []
    runs: list[tuple[list[str], float]] = []
    for piece in [*pieces.items, None]:
        if piece is None:
            segments.append([("".join(texts), weight) for texts, weight in runs])
            runs = []
        elif runs and runs[-1][1] == piece.weight:
            runs[-1][0].extend(piece.texts)
        else:
            runs.append((list(piece.texts), piece.weight))
    return segments


def _float(number: str) -> float | None:
    try:
        return float(number)
    except ValueError:  # "1.2.3" or "." match the pattern but are no number
        return None
