"""AUTOMATIC1111's prompt language, in pure Python: editing, alternation, emphasis, BREAK, chunks.

The stages run in this order for each prompt (positive and negative alike):

1. ``strip_extra_networks``: ``<lora:name:0.8>``-style tags are taken out of the text first.
2. ``prompt_schedule``: ``[from:to:when]`` and ``[a|b]`` give the text in force at each step
   (``prompt_at_step`` picks one); emphasis brackets and escapes pass through untouched.
3. ``parse_emphasis``: each scheduled text becomes BREAK-separated segments of ``(text, weight)``.
4. The pieces are tokenized one by one (ids without BOS/EOS).
5. ``make_chunks``: the weighted tokens are cut into chunks of 75 (BREAK and comma rules), each
   padded and wrapped in BOS ... EOS to 77 ids.
6. Each chunk goes through the text encoder on its own.
7. ``apply_emphasis``: each chunk's output is scaled by its weights, its mean kept.
8. The chunks' outputs are concatenated to ``[1, 77 * k, D]``: the conditioning for that step span.
"""

from pi_axera_sd.engine.prompts.chunks import CHUNK_TOKENS, COMMA_BACKTRACK, Chunk, make_chunks
from pi_axera_sd.engine.prompts.emphasis import parse_emphasis
from pi_axera_sd.engine.prompts.extra_networks import ExtraNetworkTag, strip_extra_networks
from pi_axera_sd.engine.prompts.schedule import prompt_at_step, prompt_schedule
from pi_axera_sd.engine.prompts.weighting import apply_emphasis

__all__ = [
    "CHUNK_TOKENS",
    "COMMA_BACKTRACK",
    "Chunk",
    "ExtraNetworkTag",
    "apply_emphasis",
    "make_chunks",
    "parse_emphasis",
    "prompt_at_step",
    "prompt_schedule",
    "strip_extra_networks",
]
