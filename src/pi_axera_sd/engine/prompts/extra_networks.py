"""Extra-network tags (``<lora:name:0.8>``, ``<hypernet:name>``, ...) taken out of a prompt.

AUTOMATIC1111 removes every ``<word:args>`` tag before the prompt language sees the text, so a tag
never reaches the scheduler, the emphasis parser or the tokenizer; the tags are returned in the
order written for whoever applies the networks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The tag's kind: one or more word characters between "<" and the first ":".
_KIND = re.compile(r"\w+:")


@dataclass(frozen=True)
class ExtraNetworkTag:
    """One ``<kind:args>`` tag as found in the prompt."""

    kind: str  # "lora", "lyco", "hypernet", ... (the word before the first colon)
    args: str  # everything after the first colon, e.g. "name:0.8"
    text: str  # the tag exactly as written, e.g. "<lora:name:0.8>"


def strip_extra_networks(prompt: str) -> tuple[str, tuple[ExtraNetworkTag, ...]]:
    """The prompt without its ``<word:args>`` tags (each replaced by nothing), and the tags in order.

    Same matches as the pattern ``<(\\w+):([^>]+)>`` scanned left to right, but by hand: a long run
    of ``<a:`` without any ``>`` would make that pattern quadratic.
    """
    kept: list[str] = []
    tags: list[ExtraNetworkTag] = []
    start = 0  # the start of text not yet copied to `kept`
    pos = prompt.find("<")
    while pos != -1:
        kind = _KIND.match(prompt, pos + 1)
        if kind is not None:
            close = prompt.find(">", kind.end())
            if close == -1:
                break  # no ">" anywhere after: no later tag can close either
            if close > kind.end():  # the args are one or more characters
                kept.append(prompt[start:pos])
                tags.append(
                    ExtraNetworkTag(kind.group()[:-1], prompt[kind.end() : close], prompt[pos : close + 1])
                )
                start = close + 1
                pos = prompt.find("<", start)
                continue
        pos = prompt.find("<", pos + 1)
    kept.append(prompt[start:])
    return "".join(kept), tuple(tags)
