"""The engine against diffusers' own LCM pipelines on the same tiny weights and the same noise."""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from pi_axera_sd.defaults import TXT2IMG_TIMESTEPS
from pi_axera_sd.engine.imageio import to_model_input
from pi_axera_sd.engine.pipeline import GenerationParams, seeded_noise

MAX_PIXEL_DIFF = 2  # out of 255, the bound


class RecordingNoise:
    """The engine's seeded noise, remembered in draw order so diffusers can replay it."""

    def __init__(self, seed: int) -> None:
        self._draw = seeded_noise(seed)
        self.draws: list[np.ndarray] = []

    def __call__(self, shape):
        x = self._draw(shape)
        self.draws.append(x.copy())
        return x


@contextmanager
def replay_noise(draws: list[np.ndarray]):
    """Make every diffusers randn_tensor call return the engine's draws, in order."""
    queue = list(draws)

    def fake_randn(shape, generator=None, device=None, dtype=None, layout=None):
        x = queue.pop(0)
        assert tuple(shape) == x.shape, f"diffusers drew {tuple(shape)}, engine drew {x.shape}"
        return torch.from_numpy(x).to(dtype=dtype or torch.float32)

    targets = [
        "diffusers.schedulers.scheduling_lcm.randn_tensor",
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img.randn_tensor",
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint.randn_tensor",
        "diffusers.models.autoencoders.vae.randn_tensor",
    ]
    with contextlib.ExitStack() as patches:
        for target in targets:
            patches.enter_context(mock.patch(target, fake_randn))
        yield queue
    assert not queue, f"{len(queue)} engine noise draws were not used by diffusers"


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def diffusers_txt2img(pipe, prompt: str, noise: RecordingNoise, height: int, width: int) -> np.ndarray:
    """diffusers' LCM txt2img (4 steps, no CFG) on the engine's draws: the initial latent, then the rest."""
    with replay_noise(noise.draws[1:]):
        image = pipe(
            prompt=prompt,
            timesteps=list(TXT2IMG_TIMESTEPS),
            guidance_scale=1.0,
            latents=torch.from_numpy(noise.draws[0]),
            height=height,
            width=width,
            output_type="pil",
        ).images[0]
    return np.asarray(image)


def diffusers_img2img(
    pipe, prompt: str, init: Image.Image, strength: float, noise: RecordingNoise
) -> np.ndarray:
    """diffusers' LCM img2img on the engine's draws, in the order the engine made them."""
    with replay_noise(noise.draws):
        image = pipe(
            prompt=prompt,
            image=init,
            strength=strength,
            timesteps=list(TXT2IMG_TIMESTEPS),
            guidance_scale=1.0,
            output_type="pil",
        ).images[0]
    return np.asarray(image)


@pytest.mark.parametrize("prompt", ["a photograph of a red fox in the snow, highly detailed", ""])
def test_txt2img_matches_diffusers(tiny_pipe, tiny_engine, prompt):
    noise = RecordingNoise(seed=1234)
    ours = tiny_engine.generate(GenerationParams(prompt=prompt, seed=1234), noise=noise)
    assert ours.timesteps == TXT2IMG_TIMESTEPS
    assert len(noise.draws) == 4  # initial latent + 3 renoise draws

    ref_pixels = diffusers_txt2img(tiny_pipe, prompt, noise, tiny_engine.height, tiny_engine.width)
    assert ref_pixels.shape == ours.pixels.shape == (tiny_engine.height, tiny_engine.width, 3)
    assert ours.pixels.std() > 5, "degenerate image: the comparison would prove nothing"
    diff = _max_diff(ours.pixels, ref_pixels)
    print(f"txt2img max pixel diff vs diffusers: {diff}/255")
    assert diff <= MAX_PIXEL_DIFF


@pytest.mark.parametrize(("strength", "steps"), [(0.25, 1), (0.5, 2), (0.75, 3), (1.0, 4)])
def test_img2img_matches_diffusers(tiny_pipe, tiny_engine, strength, steps):
    from diffusers import StableDiffusionImg2ImgPipeline

    img2img = StableDiffusionImg2ImgPipeline(**tiny_pipe.components)
    img2img.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(7)
    h, w = tiny_engine.height, tiny_engine.width
    gradient = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    init = Image.fromarray(np.clip(gradient + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))

    noise = RecordingNoise(seed=99)
    ours = tiny_engine.generate(
        GenerationParams(
            prompt="a pencil sketch", seed=99, init_image=to_model_input(init), strength=strength
        ),
        noise=noise,
    )
    assert len(ours.timesteps) == steps
    assert ours.timesteps == TXT2IMG_TIMESTEPS[4 - steps :]
    ref = diffusers_img2img(img2img, "a pencil sketch", init, strength, noise)
    diff = _max_diff(ours.pixels, ref)
    print(f"img2img strength={strength} max pixel diff vs diffusers: {diff}/255")
    assert diff <= MAX_PIXEL_DIFF


def test_plain_timestep_unet_gives_the_same_image(tiny_engine, tiny_plain_dir):
    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import Pipeline

    plain = Pipeline.load(resolve_layout(tiny_plain_dir))
    assert "timestep" in plain.unet.input_names
    a = tiny_engine.generate(GenerationParams(prompt="a lighthouse", seed=5))
    b = plain.generate(GenerationParams(prompt="a lighthouse", seed=5))
    assert _max_diff(a.pixels, b.pixels) <= 1


def test_text_encoder_matches_transformers(tiny_pipe, tiny_engine):
    prompt = "a cat wearing a tiny hat, watercolor"
    ids = tiny_pipe.tokenizer(
        prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        ref = tiny_pipe.text_encoder(ids.input_ids)[0].numpy()
    ours = tiny_engine.encode_prompt(prompt)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_comparison_is_sensitive_to_the_time_embedding(tiny_engine):
    """Guard for the tests above: feeding the wrong time rows must move pixels past the bound."""
    good = tiny_engine.generate(GenerationParams(prompt="a lighthouse", seed=3))
    rows = tiny_engine._time_rows
    try:
        tiny_engine._time_rows = rows[::-1].copy()
        wrong = tiny_engine.generate(GenerationParams(prompt="a lighthouse", seed=3))
    finally:
        tiny_engine._time_rows = rows
    assert _max_diff(good.pixels, wrong.pixels) > MAX_PIXEL_DIFF


def test_export_leaves_the_diffusers_model_unchanged(tiny_pipe, tiny_model_dir):
    """The cut-UNet export patches time_emb_proj while tracing; the pipeline must be restored."""
    from pi_axera_sd.modeltools.export_sd import _cut_unet_module

    unet = tiny_pipe.unet
    sample = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    states = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = unet(sample, 259, states).sample
        with _cut_unet_module(unet):
            pass
        after = unet(sample, 259, states).sample
    torch.testing.assert_close(before, after)
    assert all(
        type(m.time_emb_proj).__name__ == "Linear" for m in unet.modules() if hasattr(m, "time_emb_proj")
    )


def test_tiny_vae_matches_diffusers_autoencoder_tiny(tiny_pipe, tiny_taesd, tiny_engine):
    from diffusers import StableDiffusionPipeline

    assert tiny_engine.vae_choices == ("full", "tiny")
    components = {**tiny_pipe.components, "vae": tiny_taesd}
    taesd_pipe = StableDiffusionPipeline(**components)
    taesd_pipe.set_progress_bar_config(disable=True)
    noise = RecordingNoise(seed=31)
    ours = tiny_engine.generate(GenerationParams(prompt="a fox", seed=31, vae="tiny"), noise=noise)
    full = tiny_engine.generate(GenerationParams(prompt="a fox", seed=31, vae="full"))
    assert _max_diff(ours.pixels, full.pixels) > MAX_PIXEL_DIFF  # the tiny decoder really was used
    ref = diffusers_txt2img(taesd_pipe, "a fox", noise, tiny_engine.height, tiny_engine.width)
    diff = _max_diff(ours.pixels, ref)
    print(f"tiny VAE max pixel diff vs diffusers AutoencoderTiny: {diff}/255")
    assert diff <= MAX_PIXEL_DIFF


def _gradient_image(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return Image.fromarray(np.clip(gradient + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))


def test_tiny_vae_img2img_uses_the_taesd_encoder_like_diffusers(tiny_pipe, tiny_taesd, tiny_engine):
    """img2img with vae=tiny: TAESD encodes (no posterior draw; latents unscaled, scaling_factor 1.0)
    and decodes, as diffusers' img2img pipeline does with an AutoencoderTiny as its VAE."""
    from diffusers import StableDiffusionImg2ImgPipeline

    assert tiny_engine.vae_encoder_tiny is not None
    img2img = StableDiffusionImg2ImgPipeline(**{**tiny_pipe.components, "vae": tiny_taesd})
    img2img.set_progress_bar_config(disable=True)
    init = _gradient_image(tiny_engine.height, tiny_engine.width, seed=8)
    params = GenerationParams(
        prompt="a pencil sketch", seed=41, init_image=to_model_input(init), strength=0.5, vae="tiny"
    )
    noise = RecordingNoise(seed=41)
    ours = tiny_engine.generate(params, noise=noise)
    assert len(noise.draws) == 2  # the added noise and one step's: TAESD draws no posterior sample
    ref = diffusers_img2img(img2img, "a pencil sketch", init, 0.5, noise)
    diff = _max_diff(ours.pixels, ref)
    print(f"tiny VAE img2img max pixel diff vs diffusers AutoencoderTiny: {diff}/255")
    assert diff <= MAX_PIXEL_DIFF


def test_tiny_vae_img2img_falls_back_to_the_full_encoder(tiny_engine):
    init = to_model_input(_gradient_image(tiny_engine.height, tiny_engine.width, seed=8))
    params = GenerationParams(prompt="x", seed=41, init_image=init, strength=0.5, vae="tiny")
    with_taesd = tiny_engine.generate(params)
    encoder = tiny_engine.vae_encoder_tiny
    try:
        tiny_engine.vae_encoder_tiny = None
        noise = RecordingNoise(seed=41)
        fallback = tiny_engine.generate(params, noise=noise)
    finally:
        tiny_engine.vae_encoder_tiny = encoder
    assert len(noise.draws) == 3  # the full encoder's posterior sample comes first
    assert _max_diff(with_taesd.pixels, fallback.pixels) > MAX_PIXEL_DIFF


def test_unknown_or_missing_vae_choice(tiny_engine):
    from pi_axera_sd.errors import InvalidInput

    with pytest.raises(InvalidInput, match="vae must be 'full' or 'tiny'"):
        tiny_engine.generate(GenerationParams(prompt="x", seed=1, vae="huge"))
    decoder = tiny_engine.vae_decoder_tiny
    try:
        tiny_engine.vae_decoder_tiny = None
        with pytest.raises(InvalidInput, match="no tiny VAE decoder"):
            tiny_engine.generate(GenerationParams(prompt="x", seed=1, vae="tiny"))
    finally:
        tiny_engine.vae_decoder_tiny = decoder
