"""Inpainting with an ordinary 4-channel UNet, against diffusers' StableDiffusionInpaintPipeline on the
same tiny weights and the same noise, and A1111's mask handling (engine.masks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_reference_diffusers import MAX_PIXEL_DIFF, RecordingNoise, _max_diff, replay_noise

from pi_axera_sd.defaults import TXT2IMG_TIMESTEPS
from pi_axera_sd.engine.imageio import to_model_input
from pi_axera_sd.engine.masks import latent_mask, mask_from_image, overlay
from pi_axera_sd.engine.pipeline import GenerationParams
from pi_axera_sd.errors import InvalidInput

LATENT_TOLERANCE = 5e-4  # as in test_prompt_fidelity: FP32 ONNX Runtime against torch
BOX = (40, 32, 88, 96)  # x1, y1, x2, y2: on the 8-pixel grid, so diffusers' nearest and A1111's
# rounded bicubic latent masks are the same


def init_image(size: int = 128) -> Image.Image:
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, size, dtype=np.float32)[None, :, None] * np.ones((size, 1, 3), np.float32)
    return Image.fromarray(np.clip(ramp + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8))


def box_mask(size: int = 128) -> Image.Image:
    mask = np.zeros((size, size), np.uint8)
    x1, y1, x2, y2 = BOX
    mask[y1:y2, x1:x2] = 255
    return Image.fromarray(mask)


def inpaint_draws(draws: list[np.ndarray]) -> list[np.ndarray]:
    """diffusers' inpainting draws from the engine's: the image's posterior, the noise, the masked
    image's posterior (unused by a 4-channel UNet, which the engine does not draw: zeros), the steps."""
    return [draws[0], draws[1], np.zeros_like(draws[0]), *draws[2:]]


@pytest.mark.parametrize(("strength", "steps"), [(0.5, 2), (0.75, 3)])
def test_inpainting_matches_diffusers_inpaint_pipeline(tiny_pipe, tiny_engine, strength, steps):
    from diffusers import StableDiffusionInpaintPipeline

    inpaint = StableDiffusionInpaintPipeline(**tiny_pipe.components)
    inpaint.set_progress_bar_config(disable=True)
    init, mask_image = init_image(), box_mask()
    mask = latent_mask(mask_from_image(mask_image, init.size), tiny_engine.latent_shape[2:])
    noise = RecordingNoise(seed=17)
    kept = {}
    ours = tiny_engine.generate(
        GenerationParams(
            prompt="a red fox", seed=17, init_image=to_model_input(init), strength=strength, mask=mask
        ),
        noise=noise,
        on_latent=lambda _d, _t, x: kept.update(x=x),
    )
    assert len(ours.timesteps) == steps
    with replay_noise(inpaint_draws(noise.draws)):
        latent = inpaint(
            prompt="a red fox",
            image=init,
            mask_image=mask_image,
            strength=strength,
            timesteps=list(TXT2IMG_TIMESTEPS),
            guidance_scale=1.0,
            output_type="latent",
        ).images
    with torch.no_grad():
        decoded = inpaint.vae.decode(latent / inpaint.vae.config.scaling_factor, return_dict=False)[0]
    reference = np.asarray(inpaint.image_processor.postprocess(decoded, output_type="pil")[0])
    # the engine's last on_latent is the step's estimate; the blend then restores the known area
    ours_latent = kept["x"] * mask + (1 - mask) * latent.numpy()
    latent_diff = float(np.abs(ours_latent - latent.numpy()).max())
    diff = _max_diff(ours.pixels, reference)
    print(f"inpainting strength={strength}: max pixel diff {diff}/255, latent diff {latent_diff:.2e}")
    assert diff <= MAX_PIXEL_DIFF
    assert latent_diff <= LATENT_TOLERANCE


def decoded_latent(engine, params: GenerationParams, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """The image and the latent the VAE decoder was given (after the last step's blend)."""
    seen = {}
    original = engine.decode_latent

    def recording(latent, vae="full"):
        seen["latent"] = latent.copy()
        return original(latent, vae)

    monkeypatch.setattr(engine, "decode_latent", recording)
    pixels = engine.generate(params).pixels
    monkeypatch.setattr(engine, "decode_latent", original)
    return pixels, seen["latent"]


def test_the_known_area_is_kept_and_the_masked_area_changes(tiny_engine, monkeypatch):
    init = init_image()
    mask_px = mask_from_image(box_mask(), init.size)
    params = GenerationParams(
        prompt="a red fox",
        seed=3,
        init_image=to_model_input(init),
        strength=0.75,
        mask=latent_mask(mask_px, tiny_engine.latent_shape[2:]),
    )
    masked, latent = decoded_latent(tiny_engine, params, monkeypatch)
    _, plain = decoded_latent(tiny_engine, GenerationParams(**{**vars(params), "mask": None}), monkeypatch)
    clean = tiny_engine.encode_image(to_model_input(init), lambda shape: np.zeros(shape, np.float32))
    known = params.mask == 0
    # the known area ends as the init latent (its posterior sample), the masked one as img2img's
    posterior_spread = float(np.abs(latent - clean)[np.broadcast_to(known, latent.shape)].max())
    assert posterior_spread < float(np.abs(plain - clean)[np.broadcast_to(known, latent.shape)].max())
    assert np.allclose(
        latent[np.broadcast_to(~known, latent.shape)], plain[np.broadcast_to(~known, latent.shape)], atol=5
    )
    final = overlay(masked, np.asarray(init), mask_px)
    outside = mask_px == 0
    assert np.array_equal(final[outside], np.asarray(init)[outside])  # blur 0: exactly the input
    assert not np.array_equal(final[~outside], np.asarray(init)[~outside])


@pytest.mark.parametrize("content", ["latent noise", "latent nothing"])
def test_masked_content_changes_only_the_masked_area_start(tiny_engine, content, monkeypatch):
    init = init_image()
    mask = latent_mask(mask_from_image(box_mask(), init.size), tiny_engine.latent_shape[2:])
    base = GenerationParams(prompt="x", seed=4, init_image=to_model_input(init), strength=0.5, mask=mask)
    _, original = decoded_latent(tiny_engine, base, monkeypatch)
    _, other = decoded_latent(
        tiny_engine, GenerationParams(**{**vars(base), "masked_content": content}), monkeypatch
    )
    inside = np.broadcast_to(mask == 1, original.shape)
    assert np.abs(original - other)[inside].max() > 0.1  # the masked area started elsewhere
    assert np.array_equal(original[~inside], other[~inside])  # the known area is the init latent


def test_a_mask_needs_an_init_image_of_the_latents_size(tiny_engine):
    mask = np.ones((1, 1, 16, 16), np.float32)
    with pytest.raises(InvalidInput, match="needs an init image"):
        tiny_engine.generate(GenerationParams(prompt="x", seed=1, mask=mask))
    with pytest.raises(InvalidInput, match="latent's size"):
        tiny_engine.generate(
            GenerationParams(
                prompt="x", seed=1, init_image=to_model_input(init_image()), mask=np.ones((1, 1, 8, 8))
            )
        )


# ---- a 9-channel inpainting UNet (diffusers' layout, e.g. stable-diffusion-inpainting) ----------------


@pytest.fixture(scope="module")
def inpaint_pipe():
    from pi_axera_sd.modeltools.random_sd import build_sd_pipeline

    return build_sd_pipeline("tiny", seed=0, in_channels=9)


@pytest.fixture(scope="module")
def inpaint_engine(inpaint_pipe, tmp_path_factory):
    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import Pipeline
    from pi_axera_sd.modeltools.export_sd import export_pipeline

    out = tmp_path_factory.mktemp("tiny-inpaint")
    manifest = export_pipeline(inpaint_pipe, out, name="tiny-inpaint", source="tests")
    assert manifest["unet_in_channels"] == 9
    return Pipeline.load(resolve_layout(out))


def test_a_9_channel_unet_matches_diffusers_inpaint_pipeline(inpaint_pipe, inpaint_engine):
    from diffusers import StableDiffusionInpaintPipeline

    assert inpaint_engine.inpainting_unet and inpaint_engine.latent_shape[1] == 4
    inpaint = StableDiffusionInpaintPipeline(**inpaint_pipe.components)
    inpaint.set_progress_bar_config(disable=True)
    init, mask_image = init_image(), box_mask()
    mask_px = mask_from_image(mask_image, init.size)
    noise = RecordingNoise(seed=23)
    ours = inpaint_engine.generate(
        GenerationParams(
            prompt="a red fox",
            seed=23,
            init_image=to_model_input(init),
            strength=0.75,
            mask=latent_mask(mask_px, inpaint_engine.latent_shape[2:]),
            mask_pixels=mask_px[None, None],
        ),
        noise=noise,
    )
    # diffusers draws as the engine did: the image's posterior, the noise, the masked image's
    # posterior (a 9-channel UNet uses it), then the steps
    with replay_noise(noise.draws):
        reference = inpaint(
            prompt="a red fox",
            image=init,
            mask_image=mask_image,
            strength=0.75,
            timesteps=list(TXT2IMG_TIMESTEPS),
            guidance_scale=1.0,
            output_type="np",
        ).images[0]
    reference = np.round(reference * 255).astype(np.uint8)
    diff = _max_diff(ours.pixels, reference)
    print(f"9-channel inpainting UNet: max pixel diff vs diffusers {diff}/255")
    assert diff <= MAX_PIXEL_DIFF
    unmasked = inpaint_engine.generate(
        GenerationParams(prompt="a red fox", seed=23, init_image=to_model_input(init), strength=0.75)
    )
    assert _max_diff(unmasked.pixels, ours.pixels) > MAX_PIXEL_DIFF  # the conditioning is seen


def test_a_9_channel_unet_makes_txt2img_and_plain_img2img(inpaint_engine):
    txt2img = inpaint_engine.generate(GenerationParams(prompt="a red fox", seed=1))
    img2img = inpaint_engine.generate(
        GenerationParams(prompt="a red fox", seed=1, init_image=to_model_input(init_image()), strength=0.5)
    )
    assert txt2img.pixels.std() > 5 and img2img.pixels.shape == (128, 128, 3)


def test_inpainting_on_openvino_keeps_the_known_latent(tiny_optimum_ov_dir, monkeypatch):
    """The same numpy path around OpenVINO's sessions (an LCM UNet with a guidance input)."""
    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import Pipeline
    from pi_axera_sd.runtime import RuntimeOptions

    engine = Pipeline.load(
        resolve_layout(tiny_optimum_ov_dir), RuntimeOptions(runtime="openvino", precision="f32")
    )
    init = init_image(engine.width)
    mask = latent_mask(mask_from_image(box_mask(engine.width), init.size), engine.latent_shape[2:])
    params = GenerationParams(prompt="x", seed=2, init_image=to_model_input(init), strength=0.75, mask=mask)
    _, latent = decoded_latent(engine, params, monkeypatch)
    _, again = decoded_latent(engine, GenerationParams(**{**vars(params), "seed": 3}), monkeypatch)
    known = np.broadcast_to(mask == 0, latent.shape)
    # outside the mask both seeds end on the same init latent (img2img's posterior is drawn from a
    # generator seeded 0, as in the original service); inside, each seed made its own
    assert np.abs(latent - again)[known].max() == 0
    assert np.abs(latent - again)[~known].max() > 0.1


def test_a_masked_job_reports_each_step_and_stops_when_asked(tiny_engine):
    from pi_axera_sd.errors import Cancelled

    init = init_image()
    mask = latent_mask(mask_from_image(box_mask(), init.size), tiny_engine.latent_shape[2:])
    params = GenerationParams(prompt="x", seed=1, init_image=to_model_input(init), strength=1.0, mask=mask)
    seen = []
    tiny_engine.generate(
        params, on_latent=lambda done, total, latent: seen.append((done, total, latent.shape))
    )
    assert seen == [(i, 4, (1, 4, 16, 16)) for i in range(1, 5)]  # live previews see every step

    def stop_at_step_2(done, total):
        if done == 2:
            raise Cancelled("interrupted")

    with pytest.raises(Cancelled):
        tiny_engine.generate(params, on_step=stop_at_step_2)
    assert tiny_engine.generate(params).pixels.shape == (128, 128, 3)  # the next job is whole
