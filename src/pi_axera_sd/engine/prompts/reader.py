"""A prompt read for one generation: A1111's language, bound to the model's tokenizer.

:class:`PromptReader` runs the stages of :mod:`pi_axera_sd.engine.prompts` in order and returns a
:class:`ReadPrompt`: for each step of the generation, which 77-token chunks condition it, plus what
could not be followed (extra-network tags, chunks past what the model takes) as plain sentences for
the answer. Encoding the chunks is the pipeline's job (it owns the text encoder and its cache).
"""

from __future__ import annotations

from dataclasses import dataclass

from pi_axera_sd.engine.prompts.chunks import CHUNK_TOKENS, Chunk, make_chunks
from pi_axera_sd.engine.prompts.emphasis import parse_emphasis
from pi_axera_sd.engine.prompts.extra_networks import ExtraNetworkTag, strip_extra_networks
from pi_axera_sd.engine.prompts.schedule import prompt_schedule
from pi_axera_sd.engine.tokenizer import ClipTokenizer


@dataclass(frozen=True)
class ReadPrompt:
    """One prompt over ``steps`` steps. ``entries``: (last step it applies to, its chunks), ascending;
    the chunks are those the model takes (at most ``max_chunks``), ``chunk_tokens`` counts every chunk's
    real tokens, the dropped ones included."""

    entries: tuple[tuple[int, tuple[Chunk, ...]], ...]
    tags: tuple[ExtraNetworkTag, ...]
    chunk_tokens: tuple[int, ...]  # per chunk of the longest entry, as read (before any cut)
    dropped_tokens: int  # real tokens in chunks past max_chunks (the longest entry's)
    max_chunks: int

    def chunks_at(self, step: int) -> tuple[Chunk, ...]:
        """The chunks for ``step`` (counted from 1): the first entry that ends at or after it."""
        for end, chunks in self.entries:
            if step <= end:
                return chunks
        return self.entries[-1][1]

    @property
    def token_count(self) -> int:
        return sum(self.chunk_tokens)

    def warnings(self, what: str = "prompt") -> list[str]:
        """What the model could not follow, one sentence each, naming ``what`` (prompt / negative prompt)."""
        found = []
        if self.tags:
            listed = " ".join(tag.text for tag in self.tags)
            found.append(
                f"{what}: {listed} not applied: extra networks (LoRA, LyCORIS, hypernetworks) are not "
                "loaded at run time; the model's LoRA is fused into it at export"
            )
        if self.dropped_tokens:
            used = sum(self.chunk_tokens[: self.max_chunks])
            takes = (
                f"{self.max_chunks * (CHUNK_TOKENS + 2)} context tokens ({self.max_chunks} chunk"
                f"{'s' if self.max_chunks > 1 else ''} of {CHUNK_TOKENS})"
            )
            found.append(
                f"{what} has {self.token_count} tokens in {len(self.chunk_tokens)} chunks; this model "
                f"takes {takes}, so {self.dropped_tokens} tokens were dropped and only the first "
                f"{used} used"
            )
        return found


class PromptReader:
    """Reads prompts into chunks with the model's tokenizer, by A1111's rules or as literal text."""

    def __init__(self, tokenizer: ClipTokenizer) -> None:
        self.tokenizer = tokenizer

    def chunks(self, text: str, *, syntax: bool, max_chunks: int) -> list[Chunk]:
        """Every chunk of one (already scheduled) text. Without ``syntax`` the text is one piece of
        weight 1: no emphasis and no BREAK, but still cut into chunks so nothing is lost silently.
        ``max_chunks`` bounds the tokenizer's work, not the answer: one chunk past it is still made,
        so a cut is always seen."""
        segments = parse_emphasis(text) if syntax else [[(text, 1.0)]]
        texts = [piece for segment in segments for piece, _ in segment]
        budget = CHUNK_TOKENS * (max_chunks + 1)
        ids = iter(self.tokenizer.piece_ids(texts, budget))
        tokenized = [[(next(ids), weight) for _, weight in segment] for segment in segments]
        tok = self.tokenizer
        return make_chunks(tokenized, bos=tok.bos_id, eos=tok.eos_id, pad=tok.pad_id, comma=tok.comma_id)

    def read(self, prompt: str, steps: int, *, syntax: bool = True, max_chunks: int = 1) -> ReadPrompt:
        """``prompt`` over ``steps`` steps, cut to the ``max_chunks`` the model takes."""
        tags: tuple[ExtraNetworkTag, ...] = ()
        if syntax:
            prompt, tags = strip_extra_networks(prompt)
            schedule = prompt_schedule(prompt, steps)
        else:
            schedule = [(steps, prompt)]
        read_texts: dict[str, list[Chunk]] = {}
        entries = []
        longest: list[Chunk] = []
        for end, text in schedule:
            chunks = read_texts.get(text)
            if chunks is None:
                chunks = read_texts[text] = self.chunks(text, syntax=syntax, max_chunks=max_chunks)
            if len(chunks) > len(longest):
                longest = chunks
            entries.append((end, tuple(chunks[:max_chunks])))
        dropped = sum(chunk.used for chunk in longest[max_chunks:])
        return ReadPrompt(
            entries=tuple(entries),
            tags=tags,
            chunk_tokens=tuple(chunk.used for chunk in longest),
            dropped_tokens=dropped,
            max_chunks=max_chunks,
        )
