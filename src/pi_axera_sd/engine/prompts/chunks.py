"""A weighted, tokenized prompt cut into 75-token chunks, AUTOMATIC1111's way.

Each chunk is encoded by the text encoder on its own (BOS, 75 tokens, EOS = 77 ids) and the outputs are
concatenated, so a prompt is not cut off at 75 tokens. Cuts follow A1111's rules: a BREAK starts a
new chunk, and a chunk that fills up soon after a comma is cut after that comma, moving the rest of
the phrase to the next chunk rather than splitting it.
"""

from __future__ import annotations

from dataclasses import dataclass

CHUNK_TOKENS = 75  # tokens per chunk between BOS and EOS
COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack default


@dataclass(frozen=True)
class Chunk:
    """One text-encoder input and the weight of each of its positions."""

    ids: tuple[int, ...]  # CHUNK_TOKENS + 2 ids: BOS, tokens, padding, EOS
    weights: tuple[float, ...]  # same length; 1.0 at BOS, EOS and padding
    used: int  # real prompt tokens in this chunk (for "42/75" counters)


def make_chunks(
    segments: list[list[tuple[list[int], float]]],
    *,
    bos: int,
    eos: int,
    pad: int,
    comma: int | None,
    chunk_tokens: int = CHUNK_TOKENS,
    backtrack: int = COMMA_BACKTRACK,
) -> list[Chunk]:
    """Chunks for BREAK-separated `segments` of ``(token ids, weight)`` pieces (ids without BOS/EOS).

    `comma` is the comma's token id (None: no comma rule); `backtrack` 0 also turns the rule off.
    """
    chunks: list[Chunk] = []
    ids: list[int] = []
    weights: list[float] = []
    last_comma = -1  # index in `ids` of the current chunk's last comma; -1: none yet

    def close() -> None:
        nonlocal ids, weights, last_comma
        padding = chunk_tokens - len(ids)
        chunks.append(
            Chunk(
                ids=(bos, *ids, *[pad] * padding, eos),
                weights=(1.0, *weights, *[1.0] * padding, 1.0),
                used=len(ids),
            )
        )
        ids, weights, last_comma = [], [], -1

    use_commas = comma is not None and backtrack != 0
    for index, segment in enumerate(segments):
        if index:
            close()  # a BREAK closes the chunk, even an empty one
        for tokens, weight in segment:
            for token in tokens:
                if use_commas and token == comma:
                    # recorded where it will land; a comma never triggers the move itself
                    last_comma = len(ids)
                elif (
                    use_commas
                    and len(ids) == chunk_tokens
                    and last_comma != -1
                    and len(ids) - last_comma <= backtrack
                ):
                    # the chunk is full and a comma is near its end: cut after the comma and move
                    # the words after it to the next chunk
                    moved_ids, moved_weights = ids[last_comma + 1 :], weights[last_comma + 1 :]
                    ids, weights = ids[: last_comma + 1], weights[: last_comma + 1]
                    close()
                    ids, weights = moved_ids, moved_weights
                if len(ids) == chunk_tokens:
                    close()
                ids.append(token)
                weights.append(weight)
    if ids or not chunks:
        close()
    return chunks
