"""What A1111's prompt language costs per request, and what each extra 75-token chunk costs.

    python bench/prompt_cost.py [--size tiny|full] [--runs N]

1. Reading (host work, no model): extra-network tags, the per-step schedule, emphasis, BREAK,
   tokenising the pieces and cutting chunks, plus the weighting of each chunk's hidden states at
   SD1.5's width (768). Peer, measured in the same run: the plain tokenizer call that was all the
   service did before. Target: <= 2 ms per request.
2. Each extra chunk: the text encoder runs once more, and the UNet's cross-attention reads 77 more
   context tokens at every step. Measured on the benchmark model (``bench/models.py``; ``--size
   tiny`` for a quick run), as ratios to a one-chunk prompt in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_ms

from pi_axera_sd.engine.prompts.reader import PromptReader
from pi_axera_sd.engine.prompts.weighting import apply_emphasis
from pi_axera_sd.engine.tokenizer import ClipTokenizer
from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

# What SillyTavern and Open WebUI send: weights, a LoRA tag, editing, about 60 tokens.
CLIENT_PROMPT = (
    "masterpiece, best quality, (a red fox:1.2) sitting in the [snow:fresh snow:0.5], "
    "<lora:detail_tweaker:0.8> soft morning light, ((sharp focus)), [blurry], depth of field, "
    "highly detailed fur, BREAK oil painting, warm colours, (dramatic sky:0.9)"
)
STEPS = 4
WIDTH = 768  # SD1.5's text width: the weighting's arrays


def reading_cost(runs: int) -> None:
    tokenizer = ClipTokenizer(packaged_tokenizer_dir())
    reader = PromptReader(tokenizer)
    hidden = np.random.default_rng(0).standard_normal((1, 77, WIDTH)).astype(np.float32)

    def read_and_weigh() -> None:
        read = reader.read(CLIENT_PROMPT, STEPS, max_chunks=8)
        distinct = {chunks for _, chunks in read.entries}
        for chunks in distinct:
            for chunk in chunks:
                apply_emphasis(hidden, np.asarray(chunk.weights))

    read_and_weigh()  # warm
    ours = median_ms(read_and_weigh, runs)
    plain = median_ms(lambda: tokenizer.encode(CLIENT_PROMPT), runs)
    read = reader.read(CLIENT_PROMPT, STEPS, max_chunks=8)
    print(f"prompt of {read.token_count} tokens, {len(read.chunk_tokens)} chunks, {STEPS} steps:")
    print(f"  read + weigh per request: {ours:.3f} ms (target <= 2 ms)")
    print(f"  plain tokenizer call (the old path): {plain:.3f} ms; ratio {ours / plain:.1f}x")


def chunk_cost(size: str, runs: int) -> None:
    from models import ensure_sd15

    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
    from pi_axera_sd.runtime import RuntimeOptions

    folder = ensure_sd15(size=size) / "axera"
    engine = Pipeline.load(resolve_layout(folder), RuntimeOptions(runtime="onnxruntime"))
    print(f"model: {folder} (ONNX Runtime CPU)")
    base_text = unet = None
    for chunks in (1, 2, 3):
        prompt = " ".join(["cat"] * (70 + 75 * (chunks - 1)))  # one token each: exactly `chunks` chunks
        read = engine.prompt_reader.read(prompt, STEPS, max_chunks=8)
        texts, unets = [], []
        for run in range(runs + 1):
            engine._text_cache.clear()
            result = engine.generate(GenerationParams(prompt=prompt, seed=run))
            if run:  # the first run warms the shapes
                texts.append(result.timings.text_ms)
                unets.append(statistics.mean(result.timings.unet_ms))
        text_ms, unet_ms = statistics.median(texts), statistics.median(unets)
        base_text, unet = base_text or text_ms, unet or unet_ms
        print(
            f"  {len(read.chunk_tokens)} chunk(s), {read.token_count} tokens: text {text_ms:.1f} ms "
            f"({text_ms / base_text:.2f}x), UNet step {unet_ms:.1f} ms ({unet_ms / unet:.3f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-model", action="store_true", help="only the reading cost (no model)")
    args = parser.parse_args()
    reading_cost(max(args.runs, 50))
    if not args.skip_model:
        chunk_cost(args.size, args.runs)


if __name__ == "__main__":
    main()
