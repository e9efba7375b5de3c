"""Prompt editing ``[from:to:when]`` and alternation ``[a|b]``: AUTOMATIC1111's prompt schedule.

A prompt is parsed once into a small tree by a hand-written recursive-descent parser, then evaluated
at each step where its text can change. Emphasis brackets ``(x)``, ``(x:1.2)`` and ``[x]`` are kept in
the text with their brackets (``emphasis.py`` reads them later); escapes (``\\(``) are kept verbatim.

Grammar (A1111's, with its literal fallback)::

    start     := (prompt | one of the literal chars [ ] ( ) : | \\)*
    prompt    := (emphasized | scheduled | alternate | plain | whitespace)*
    emphasized:= "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
    scheduled := "[" [prompt ":"] prompt ":" [ws] NUMBER [ws] "]"
    alternate := "[" prompt ("|" [prompt])+ "]"
    plain     := (any char except \\ [ ] ( ) : |  or  "\\" followed by any char)+

Whatever does not parse as a construct is literal text: the parser emits the offending character and
carries on after it, so ``a [unbalanced`` stays as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# [ws] NUMBER [ws] "]" -- the tail of a scheduled construct. NUMBER is unsigned: 3, 3.5, .5, 5., 1e2.
_WHEN_TAIL = re.compile(r"\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\]")
# A run of plain text (whitespace included: it is kept exactly, so the two need not be told apart).
_PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+", re.DOTALL)
_SPECIAL = "\\[]():|"
# Deeper nesting than this gives up on the language (the whole prompt is plain text, as A1111 does
# on a parse error) rather than overflowing Python's stack.
_MAX_DEPTH = 100


@dataclass(frozen=True)
class _Scheduled:
    before: tuple[_Node, ...] | None  # None: "[to:when]", nothing before the switch
    after: tuple[_Node, ...]
    when: str  # the NUMBER as written: a "." makes it a fraction of the steps


@dataclass(frozen=True)
class _Alternate:
    options: tuple[tuple[_Node, ...], ...]


_Node = str | _Scheduled | _Alternate


class _TooDeep(Exception):
    """Nesting past _MAX_DEPTH: the prompt is taken as plain text."""


class _Parser:
    """Recursive descent with memos: a failed construct at a position is tried once, so stray
    brackets cost linear time, not a re-parse per enclosing attempt."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.constructs: dict[int, tuple[_Node | tuple[_Node, ...], int] | None] = {}
        self.prompts: dict[int, tuple[tuple[_Node, ...], int]] = {}
        self.depth = 0

    def start(self) -> tuple[_Node, ...]:
        text, pos, out = self.text, 0, []
        while pos < len(text):
            nodes, pos = self.prompt(pos)
            out.extend(nodes)
            if pos < len(text):  # a character no construct accepted: it is literal text
                out.append(text[pos])
                pos += 1
        return tuple(out)

    def prompt(self, pos: int) -> tuple[tuple[_Node, ...], int]:
        """The longest prompt from pos (possibly empty) and where it ends."""
        if pos in self.prompts:
            return self.prompts[pos]
        start, text, out = pos, self.text, []
        while pos < len(text):
            char = text[pos]
            if char in "([":
                found = self.construct(pos)
                if found is None:
                    break  # a prompt holds no stray bracket: the caller decides what it is
                node, pos = found
                if isinstance(node, tuple):
                    out.extend(node)
                else:
                    out.append(node)
            elif (char == "\\" and pos + 1 < len(text)) or char not in _SPECIAL:
                match = _PLAIN.match(text, pos)
                assert match is not None  # the character itself starts a plain run
                out.append(match.group())
                pos = match.end()
            else:  # ) ] : | or a backslash that ends the text
                break
        result = tuple(out), pos
        self.prompts[start] = result
        return result

    def construct(self, pos: int) -> tuple[_Node | tuple[_Node, ...], int] | None:
        """The bracket construct that starts at pos, and the position after it; None if none does."""
        if pos not in self.constructs:
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _TooDeep
            try:
                opener = self.text[pos]
                self.constructs[pos] = self._round(pos) if opener == "(" else self._square(pos)
            finally:
                self.depth -= 1
        return self.constructs[pos]

    def _at(self, pos: int) -> str:
        return self.text[pos] if pos < len(self.text) else ""

    def _round(self, pos: int) -> tuple[tuple[_Node, ...], int] | None:
        # "(" prompt ")" or "(" prompt ":" prompt ")": kept with its brackets for the emphasis stage
        inner, pos = self.prompt(pos + 1)
        out: list[_Node] = ["(", *inner]
        if self._at(pos) == ":":
            weight, pos = self.prompt(pos + 1)
            out += [":", *weight]
        if self._at(pos) != ")":
            return None
        out.append(")")
        return tuple(out), pos + 1

    def _square(self, pos: int) -> tuple[_Node | tuple[_Node, ...], int] | None:
        first, pos = self.prompt(pos + 1)
        char = self._at(pos)
        if char == "]":  # "[" prompt "]": a de-emphasis, kept as written
            return ("[", *first, "]"), pos + 1
        if char == "|":
            options = [first]
            while self._at(pos) == "|":
                option, pos = self.prompt(pos + 1)
                options.append(option)
            if self._at(pos) != "]":
                return None
            return _Alternate(tuple(options)), pos + 1
        if char != ":":
            return None
        # "[to:when]" first, then "[from:to:when]": a prompt holds no ":", so at most one fits
        tail = _WHEN_TAIL.match(self.text, pos + 1)
        if tail is not None:
            return _Scheduled(None, first, tail.group(1)), tail.end()
        second, pos = self.prompt(pos + 1)
        if self._at(pos) != ":":
            return None
        tail = _WHEN_TAIL.match(self.text, pos + 1)
        if tail is None:
            return None
        return _Scheduled(first, second, tail.group(1)), tail.end()


def _when(number: str, steps: int) -> int:
    """The last step of a schedule's "from" part: a fraction of the steps if written with a ".",
    else a step number; at most `steps` (min before int(): 1e999 is a valid NUMBER)."""
    value = float(number)
    if "." in number:
        value *= steps
    return int(min(value, float(steps)))


def _boundaries(nodes: tuple[_Node, ...], steps: int) -> list[int]:
    """The steps where the text may change: every reachable-or-not schedule point >= 1 (as A1111
    collects them from the whole tree), every step if anything alternates, and the last step."""
    found = {steps}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, _Scheduled):
            when = _when(node.when, steps)
            if when >= 1:
                found.add(when)
            stack.extend(node.before or ())
            stack.extend(node.after)
        elif isinstance(node, _Alternate):
            found.update(range(1, steps + 1))
            for option in node.options:
                stack.extend(option)
    return sorted(found)


def _text_at(nodes: tuple[_Node, ...], step: int, steps: int) -> str:
    parts: list[str] = []

    def walk(seq: tuple[_Node, ...]) -> None:
        for node in seq:
            if isinstance(node, str):
                parts.append(node)
            elif isinstance(node, _Scheduled):
                # "from" while step <= when; a when below 1 means "to" from the first step
                walk((node.before or ()) if step <= _when(node.when, steps) else node.after)
            else:
                walk(node.options[(step - 1) % len(node.options)])

    walk(nodes)
    return "".join(parts)


def prompt_schedule(prompt: str, steps: int) -> list[tuple[int, str]]:
    """``[(end_at_step, text), ...]``: each text holds up to and including its step (counted from
    1); end steps ascend strictly and the last is `steps`."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    try:
        tree = _Parser(prompt).start()
    except _TooDeep:
        return [(steps, prompt)]
    return [(step, _text_at(tree, step, steps)) for step in _boundaries(tree, steps)]


def prompt_at_step(schedule: list[tuple[int, str]], step: int) -> str:
    """The text in force at `step` (from 1): the first entry ending at or after it; the last entry's
    text for a step past the end."""
    if not schedule:
        raise ValueError("empty prompt schedule")
    for end, text in schedule:
        if end >= step:
            return text
    return schedule[-1][1]
