"""Export a diffusers SD1.5 model (+ optional LCM-LoRA, fused) to AXERA's ONNX layout.

The output is the folder the engine loads, and the same ONNX files Pulsar2 compiles to
``.axmodel`` for the AX650N: tokenizer files, ``text_encoder/sd15_text_encoder_sim.onnx``,
``unet.onnx`` (+ ``unet.onnx.data``) cut after the time embedding, ``time_input_*.npy``,
``vae_decoder.onnx``, ``vae_encoder.onnx`` and ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from pi_axera_sd import __version__
from pi_axera_sd.engine.contract import (
    AXERA_TIME_INPUT,
    MANIFEST,
    TEXT_ENCODER_STEM,
    VAE_ENCODER_TINY,
)
from pi_axera_sd.engine.scheduler import TXT2IMG_TIMESTEPS
from pi_axera_sd.fileio import sha256_file
from pi_axera_sd.modeltools.onnx_io import export_module
from pi_axera_sd.modeltools.progress import Stages

log = logging.getLogger(__name__)
# AXERA's img2img script runs these two steps, in rows 0-1 of time_input_img2img.npy.
AXERA_IMG2IMG_TIMESTEPS = (499, 259)


def unet_dynamic_axes(input_names: Sequence[str], output_names: Sequence[str]) -> dict[str, dict[int, str]]:
    """The UNet's free axes: batch on every tensor (prompt and negative prompt in one run) and the
    context length of encoder_hidden_states (77*k tokens: long prompts). Pulsar2 compiles one fixed
    shape; ``static_shapes`` exports skip these (see docs/models.md)."""
    axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
    axes["encoder_hidden_states"] = {0: "batch", 1: "sequence"}
    return axes


def load_diffusers_pipeline(source: str | Path, lora: str | None = None, lora_scale: float = 1.0):
    """A float32 StableDiffusionPipeline from a local folder or a hub id, LoRA fused if given."""
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(source), dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    if lora:
        pipe.load_lora_weights(str(lora))
        pipe.fuse_lora(lora_scale=lora_scale)
        pipe.unload_lora_weights()
    return pipe


def load_tiny_vae(source: str | Path):
    """A float32 diffusers ``AutoencoderTiny`` (TAESD) from a local folder or a hub id."""
    import torch
    from diffusers import AutoencoderTiny

    return AutoencoderTiny.from_pretrained(str(source), dtype=torch.float32)


def save_clip_tokenizer(tokenizer, out_dir: Path) -> None:
    """Save a CLIP tokenizer with both forms the layout's readers take: ``tokenizer.json`` and the
    ``vocab.json`` + ``merges.txt`` pair (the NPU runtime's tokenizer reads that). transformers 5
    saves only the first; older releases' slow tokenizer only the second."""
    from pi_axera_sd.engine.tokenizer import complete_tokenizer

    tokenizer.save_pretrained(str(out_dir))
    complete_tokenizer(out_dir)


def time_embeddings(unet, timesteps: Sequence[int]) -> np.ndarray:
    """silu(time_embedding(time_proj(t))) for each timestep: the cut UNet's time input rows."""
    import torch

    with torch.no_grad():
        t = torch.tensor(list(timesteps), dtype=torch.long)
        proj = unet.time_proj(t).to(dtype=torch.float32)
        emb = torch.nn.functional.silu(unet.time_embedding(proj))
    return emb.numpy().astype(np.float32)


@contextmanager
def injected_time_projection(unet):
    """While open, every ResNet's ``time_emb_proj`` is applied to ``holder["temb"]`` (set it before
    calling the UNet) instead of to its own input, so a traced graph takes that activation as an input
    and has no time_proj / time_embedding nodes, as in AXERA's export. Yields the holder; the UNet is
    restored on exit (the caller's pipeline keeps working)."""
    import torch

    holder: dict[str, Any] = {}

    class _InjectedProjection(torch.nn.Module):
        def __init__(self, proj: torch.nn.Module) -> None:
            super().__init__()
            self.proj = proj

        def forward(self, _ignored: torch.Tensor) -> torch.Tensor:
            return self.proj(holder["temb"])

    patched = [m for m in unet.modules() if isinstance(getattr(m, "time_emb_proj", None), torch.nn.Module)]
    originals = [m.time_emb_proj for m in patched]
    for module, proj in zip(patched, originals, strict=True):
        module.time_emb_proj = _InjectedProjection(proj)
    try:
        yield holder
    finally:
        for module, proj in zip(patched, originals, strict=True):
            module.time_emb_proj = proj
        holder.clear()


@contextmanager
def _cut_unet_module(unet):
    """A module whose inputs are (sample, silu(temb), encoder_hidden_states), for tracing.

    Every ResNet block computes ``time_emb_proj(silu(temb))``; see :func:`injected_time_projection`.
    """
    import torch

    with injected_time_projection(unet) as holder:

        class CutUNet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.unet = unet

            def forward(self, sample, temb, encoder_hidden_states):
                holder["temb"] = temb
                zero = torch.zeros((), dtype=torch.long)
                return self.unet(sample, zero, encoder_hidden_states, return_dict=False)[0]

        yield CutUNet()


def _plain_unet_module(unet):
    import torch

    class PlainUNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    return PlainUNet()


def _text_module(text_encoder):
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text_encoder = text_encoder

        def forward(self, input_ids):
            return self.text_encoder(input_ids, return_dict=False)[0]

    return TextEncoder()


def _vae_modules(vae):
    import torch

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, x):
            return self.vae.decode(x, return_dict=False)[0]

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, image_sample):
            # mean || logvar; the engine samples and scales on the host.
            return self.vae.encode(image_sample).latent_dist.parameters

    return Decoder(), Encoder()


def _tiny_decoder_module(taesd):
    import torch

    class TinyDecoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.taesd = taesd

        def forward(self, x):
            return self.taesd.decode(x, return_dict=False)[0]  # already in [-1, 1]

    return TinyDecoder()


def _tiny_encoder_module(taesd):
    import torch

    class TinyEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.taesd = taesd

        def forward(self, image_sample):
            # [-1, 1] image -> the latent itself (TAESD is deterministic; diffusers' scaling_factor 1.0)
            return self.taesd.encode(image_sample, return_dict=False)[0]

    return TinyEncoder()


def export_tiny_vae_encoder(tiny_vae, out: Path, size: int) -> Path:
    """Write the TAESD encoder as ``vae_encoder_tiny.onnx``: image_sample [1,3,size,size] in [-1, 1]
    -> the latent the UNet works on (diffusers' AutoencoderTiny scaling_factor is 1.0)."""
    import torch

    return export_module(
        _tiny_encoder_module(tiny_vae.eval()),
        (torch.randn(1, 3, size, size),),
        out / f"{VAE_ENCODER_TINY}.onnx",
        ["image_sample"],
        ["latent"],
    )


def export_pipeline(
    pipe,
    out_dir: str | Path,
    *,
    name: str | None = None,
    source: str | None = None,
    lora: str | None = None,
    lora_scale: float = 1.0,
    unet_time_input: str = "embedding",
    timesteps: Sequence[int] = TXT2IMG_TIMESTEPS,
    tiny_vae=None,
    tiny_vae_source: str | None = None,
    deep_cache: bool = False,
    static_shapes: bool = False,
) -> dict[str, Any]:
    """Write the AXERA layout for an already loaded diffusers pipeline; returns the manifest.

    ``unet_time_input``: ``embedding`` (AXERA's cut graph, fed from ``time_input_*.npy``) or
    ``timestep`` (a plain UNet that takes the timestep itself).
    ``tiny_vae``: an optional diffusers ``AutoencoderTiny`` (TAESD) whose decoder and encoder are
    written as ``vae_decoder_tiny.onnx`` and ``vae_encoder_tiny.onnx``.
    ``deep_cache``: also write the DeepCache pair ``unet_deep.onnx`` + ``unet_shallow.onnx``
    (:mod:`pi_axera_sd.modeltools.export_deepcache`).
    ``static_shapes``: the UNet fixed at batch 1 and 77 context tokens, as Pulsar2 compiles it for the
    NPU (long prompts then use their first chunk); by default batch and context length are free.
    """
    import torch

    if unet_time_input not in ("embedding", "timestep"):
        raise ValueError("unet_time_input must be 'embedding' or 'timestep'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    unet, vae, text_encoder = pipe.unet.eval(), pipe.vae.eval(), pipe.text_encoder.eval()
    latent = int(unet.config.sample_size)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    size = latent * factor
    max_len = int(pipe.tokenizer.model_max_length)
    hidden = int(text_encoder.config.hidden_size)

    weights = {"text encoder": 1, "unet": 6, "vae decoder": 3, "vae encoder": 2, "checksums": 1}
    if tiny_vae is not None:
        weights["tiny vae decoder"] = 1
        weights["tiny vae encoder"] = 1
    if deep_cache:
        weights["deep cache"] = 7
    stages = Stages("export", weights)
    save_clip_tokenizer(pipe.tokenizer, out / "tokenizer")

    ids = torch.zeros((1, max_len), dtype=torch.long)
    with stages.step("text encoder"):
        export_module(
            _text_module(text_encoder),
            (ids,),
            out / f"{TEXT_ENCODER_STEM}.onnx",
            ["input_ids"],
            ["last_hidden_state"],
        )

    sample = torch.randn(1, unet.config.in_channels, latent, latent)
    states = torch.randn(1, max_len, hidden)
    rows = time_embeddings(unet, timesteps)
    if unet_time_input == "embedding":
        wrapper = _cut_unet_module(unet)
        args = (sample, torch.from_numpy(rows[:1]), states)
        names = ["sample", AXERA_TIME_INPUT, "encoder_hidden_states"]
    else:
        wrapper = nullcontext(_plain_unet_module(unet))
        args = (sample, torch.tensor([999], dtype=torch.long), states)
        names = ["sample", "timestep", "encoder_hidden_states"]
    axes = None if static_shapes else unet_dynamic_axes(names, ["out_sample"])
    with stages.step("unet"), wrapper as module:
        export_module(
            module, args, out / "unet.onnx", names, ["out_sample"], external_data=True, dynamic_axes=axes
        )
    if deep_cache:
        from pi_axera_sd.modeltools.export_deepcache import export_deep_cache

        with stages.step("deep cache"):
            export_deep_cache(unet, out, unet_time_input, args, names, static_shapes=static_shapes)
    np.save(out / "time_input_txt2img.npy", rows)
    img2img = np.zeros_like(rows)
    for i, t in enumerate(AXERA_IMG2IMG_TIMESTEPS):
        img2img[i] = rows[list(timesteps).index(t)] if t in timesteps else time_embeddings(unet, [t])[0]
    np.save(out / "time_input_img2img.npy", img2img)

    decoder, encoder = _vae_modules(vae)
    with stages.step("vae decoder"):
        export_module(
            decoder,
            (torch.randn(1, vae.config.latent_channels, latent, latent),),
            out / "vae_decoder.onnx",
            ["x"],
            ["image"],
        )
    with stages.step("vae encoder"):
        export_module(
            encoder,
            (torch.randn(1, 3, size, size),),
            out / "vae_encoder.onnx",
            ["image_sample"],
            ["latent_dist"],
        )

    if tiny_vae is not None:
        tiny_decoder = _tiny_decoder_module(tiny_vae.eval())
        with stages.step("tiny vae decoder"):
            export_module(
                tiny_decoder,
                (torch.randn(1, vae.config.latent_channels, latent, latent),),
                out / "vae_decoder_tiny.onnx",
                ["x"],
                ["image"],
            )
        with stages.step("tiny vae encoder"):
            export_tiny_vae_encoder(tiny_vae, out, size)

    files = {}
    with stages.step("checksums"):
        for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST):
            entry = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            files[path.relative_to(out).as_posix()] = entry
    stages.close()
    manifest = {
        "format": "axera-sd15-lcm",
        "name": name or out.resolve().name,
        "source": source,
        "lora": lora,
        "lora_scale": lora_scale if lora else None,
        "unet_time_input": unet_time_input,
        "timesteps": list(timesteps),
        "img2img_timesteps": list(AXERA_IMG2IMG_TIMESTEPS),
        "vae_scaling_factor": float(vae.config.scaling_factor),
        "tiny_vae": tiny_vae_source if tiny_vae is not None else None,
        "tiny_vae_scaling_factor": float(tiny_vae.config.scaling_factor) if tiny_vae is not None else None,
        "deep_cache": deep_cache,
        "latent_size": latent,
        "image_size": size,
        "text_max_length": max_len,
        "unet_context": "77" if static_shapes else "77*k",
        "unet_in_channels": int(unet.config.in_channels),  # 9: an inpainting UNet
        "exporter": f"pi-axera-sd {__version__}",
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("export finished", extra={"out": str(out), "seconds": round(time.perf_counter() - started, 1)})
    return manifest


def export_model(
    source: str | Path,
    out_dir: str | Path,
    *,
    lora: str | None = None,
    lora_scale: float = 1.0,
    name: str | None = None,
    unet_time_input: str = "embedding",
    tiny_vae: str | Path | None = None,
    deep_cache: bool = False,
    static_shapes: bool = False,
) -> dict[str, Any]:
    """Load ``source`` (folder or hub id; ``HF_ENDPOINT`` is honoured by huggingface_hub) and export it.

    ``tiny_vae``: an ``AutoencoderTiny`` (TAESD) folder or hub id, written as ``vae_decoder_tiny.onnx``
    and ``vae_encoder_tiny.onnx``.
    """
    pipe = load_diffusers_pipeline(source, lora, lora_scale)
    taesd = load_tiny_vae(tiny_vae) if tiny_vae else None
    return export_pipeline(
        pipe,
        out_dir,
        name=name,
        source=str(source),
        lora=lora,
        lora_scale=lora_scale,
        unet_time_input=unet_time_input,
        tiny_vae=taesd,
        tiny_vae_source=str(tiny_vae) if tiny_vae else None,
        deep_cache=deep_cache,
        static_shapes=static_shapes,
    )
