"""Engine behaviour on the tiny model: seeds, caching, img2img steps, cancellation, timings."""

from __future__ import annotations

import numpy as np
import pytest

from pi_axera_sd.engine.pipeline import MAX_SEED, GenerationParams, resolve_seed
from pi_axera_sd.engine.scheduler import img2img_timesteps
from pi_axera_sd.errors import Cancelled, InvalidInput


def test_same_seed_same_image_other_seed_other_image(tiny_engine):
    a = tiny_engine.generate(GenerationParams("a lighthouse at dusk", seed=11))
    b = tiny_engine.generate(GenerationParams("a lighthouse at dusk", seed=11))
    c = tiny_engine.generate(GenerationParams("a lighthouse at dusk", seed=12))
    assert np.array_equal(a.pixels, b.pixels)
    assert not np.array_equal(a.pixels, c.pixels)
    assert a.seed == 11


def test_prompt_changes_the_image(tiny_engine):
    a = tiny_engine.generate(GenerationParams("a red fox", seed=1))
    b = tiny_engine.generate(GenerationParams("a blue whale", seed=1))
    assert not np.array_equal(a.pixels, b.pixels)


def test_random_seeds_are_drawn_and_in_range():
    seeds = {resolve_seed(-1) for _ in range(20)} | {resolve_seed(None) for _ in range(5)}
    assert len(seeds) > 20
    assert all(0 <= s <= MAX_SEED for s in seeds)
    assert resolve_seed(42) == 42
    assert resolve_seed(MAX_SEED + 6) == 5


@pytest.mark.parametrize(
    ("strength", "expected"),
    [
        (0.0, (259,)),
        (0.2, (259,)),
        (0.35, (259,)),
        (0.36, (499, 259)),
        (0.6, (499, 259)),
        (0.61, (759, 499, 259)),
        (0.85, (759, 499, 259)),
        (0.86, (999, 759, 499, 259)),
        (1.0, (999, 759, 499, 259)),
        (7.0, (999, 759, 499, 259)),
        (-1.0, (259,)),
    ],
)
def test_strength_to_steps_follows_the_prior_service(strength, expected):
    assert img2img_timesteps(strength) == expected


def test_prompt_embeddings_are_cached_lru(tiny_engine, monkeypatch):
    calls = []
    real_run = tiny_engine.text_encoder.run
    monkeypatch.setattr(tiny_engine.text_encoder, "run", lambda *a, **k: calls.append(1) or real_run(*a, **k))
    monkeypatch.setattr(tiny_engine, "_text_cache_size", 2)
    tiny_engine._text_cache.clear()
    first = tiny_engine.encode_prompt("cached prompt one")
    again = tiny_engine.encode_prompt("cached   PROMPT one")  # same ids after normalisation
    assert len(calls) == 1 and np.array_equal(first, again)
    tiny_engine.encode_prompt("two")
    tiny_engine.encode_prompt("three")  # evicts "cached prompt one"
    tiny_engine.encode_prompt("cached prompt one")
    assert len(calls) == 4
    assert len(tiny_engine._text_cache) == 2


def test_step_callback_and_cancellation(tiny_engine, monkeypatch):
    seen = []
    tiny_engine.generate(GenerationParams("x", seed=1), on_step=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]

    unet_calls = []
    real = tiny_engine.unet.run
    monkeypatch.setattr(tiny_engine.unet, "run", lambda *a, **k: unet_calls.append(1) or real(*a, **k))

    def stop_after_two(done, total):
        if done == 2:
            raise Cancelled("interrupted")

    with pytest.raises(Cancelled):
        tiny_engine.generate(GenerationParams("x", seed=1), on_step=stop_after_two)
    assert len(unet_calls) == 2


def test_timings_cover_every_stage(tiny_engine):
    rng = np.random.default_rng(0)
    init = rng.uniform(-1, 1, (1, 3, tiny_engine.height, tiny_engine.width)).astype(np.float32)
    result = tiny_engine.generate(GenerationParams("x", seed=3, init_image=init, strength=0.5))
    t = result.timings
    assert len(t.unet_ms) == 2 and all(ms > 0 for ms in t.unet_ms)
    assert t.text_ms > 0 and t.vae_encode_ms > 0 and t.vae_decode_ms > 0
    assert t.total_ms >= t.text_ms + t.vae_encode_ms + sum(t.unet_ms) + t.vae_decode_ms
    assert set(t.as_dict()) == {"text_ms", "vae_encode_ms", "unet_ms", "vae_decode_ms", "total_ms"}


def test_init_image_of_the_wrong_size_is_rejected(tiny_engine):
    bad = np.zeros((1, 3, 64, 64), np.float32)
    with pytest.raises(InvalidInput, match=r"init image must be \[1, 3, 128, 128\]"):
        tiny_engine.generate(GenerationParams("x", seed=1, init_image=bad))


def test_output_size_follows_the_model(tiny_engine):
    result = tiny_engine.generate(GenerationParams("x", seed=1))
    assert result.pixels.shape == (128, 128, 3) == (tiny_engine.height, tiny_engine.width, 3)
    assert tiny_engine.latent_shape == (1, 4, 16, 16)
