"""Write a diffusers pipeline in the diffusers/optimum per-component layout (ONNX or OpenVINO IR).

This is the layout the hub's ready-made exports use (``OpenVINO/LCM_Dreamshaper_v7-int8-ov``);
the tests build a tiny LCM model, write it here and compare the engine with diffusers on it, and
the local hub server serves it in place of the real repo. Tensor names follow optimum's exports:
``input_ids -> last_hidden_state``; ``sample, timestep, encoder_hidden_states[, timestep_cond]
-> out_sample``; ``latent_sample -> sample``; ``sample -> latent_parameters`` (mean || logvar).
Spatial and batch axes are dynamic, as in optimum's exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.contract import MODEL_INDEX, ONNX_FILE, OPENVINO_FILE
from pi_axera_sd.modeltools.export_sd import _text_module, _vae_modules
from pi_axera_sd.modeltools.onnx_io import export_module

FORMATS = ("onnx", "openvino")


def _unet_module(unet):
    import torch

    class LcmUNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, encoder_hidden_states, timestep_cond=None):
            return self.unet(
                sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond, return_dict=False
            )[0]

    return LcmUNet()


def _save(module, args: tuple, folder: Path, names: list[str], outputs: list[str], fmt: str, axes: dict):
    """One component as ``model.onnx`` or ``openvino_model.xml``+``.bin`` (via ONNX, so the
    IR keeps the ONNX tensor names and dynamic axes)."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = export_module(module, args, folder / ONNX_FILE, names, outputs, dynamic_axes=axes)
    if fmt == "openvino":
        import openvino as ov

        ov.save_model(ov.convert_model(str(onnx_path)), str(folder / OPENVINO_FILE), compress_to_fp16=False)
        onnx_path.unlink()


def export_optimum_layout(pipe, out_dir: str | Path, *, fmt: str = "onnx", name: str = "tiny-lcm") -> Path:
    """Write ``pipe`` (a diffusers SD/LCM pipeline) into ``out_dir`` in the per-component layout."""
    import torch

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unet, vae, text_encoder = pipe.unet.eval(), pipe.vae.eval(), pipe.text_encoder.eval()
    latent = int(unet.config.sample_size)
    size = latent * 2 ** (len(vae.config.block_out_channels) - 1)
    max_len = int(pipe.tokenizer.model_max_length)
    batch = {0: "batch"}
    spatial = {0: "batch", 2: "height", 3: "width"}

    # As optimum-intel 2.2 with transformers 5 writes it: tokenizer.json and its config, no BPE pair
    pipe.tokenizer.save_pretrained(str(out / "tokenizer"))
    pipe.scheduler.save_config(str(out / "scheduler"))
    text_encoder.config.save_pretrained(str(out / "text_encoder"))
    unet.save_config(str(out / "unet"))
    vae.save_config(str(out / "vae_decoder"))
    vae.save_config(str(out / "vae_encoder"))

    ids = torch.zeros((1, max_len), dtype=torch.long)
    _save(
        _text_module(text_encoder),
        (ids,),
        out / "text_encoder",
        ["input_ids"],
        ["last_hidden_state"],
        fmt,
        {"input_ids": batch},
    )
    states = torch.randn(1, max_len, int(text_encoder.config.hidden_size))
    args: tuple[Any, ...] = (
        torch.randn(1, unet.config.in_channels, latent, latent),
        torch.tensor([999]),
        states,
    )
    names = ["sample", "timestep", "encoder_hidden_states"]
    # optimum's own UNet config frees the context length too (77*k tokens: long prompts)
    axes = {"sample": spatial, "encoder_hidden_states": {0: "batch", 1: "sequence"}, "timestep": {0: "batch"}}
    cond_dim = unet.config.time_cond_proj_dim
    if cond_dim:
        args += (torch.randn(1, int(cond_dim)),)
        names.append("timestep_cond")
        axes["timestep_cond"] = batch
    _save(_unet_module(unet), args, out / "unet", names, ["out_sample"], fmt, axes)
    decoder, encoder = _vae_modules(vae)
    _save(
        decoder,
        (torch.randn(1, vae.config.latent_channels, latent, latent),),
        out / "vae_decoder",
        ["latent_sample"],
        ["sample"],
        fmt,
        {"latent_sample": spatial},
    )
    _save(
        encoder,
        (torch.randn(1, 3, size, size),),
        out / "vae_encoder",
        ["sample"],
        ["latent_parameters"],
        fmt,
        {"sample": spatial},
    )

    index = {
        "_class_name": "LatentConsistencyModelPipeline" if cond_dim else "StableDiffusionPipeline",
        "_name_or_path": name,
        "scheduler": ["diffusers", type(pipe.scheduler).__name__],
        "text_encoder": ["transformers", type(text_encoder).__name__],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", type(unet).__name__],
        "vae_decoder": ["diffusers", "AutoencoderKL"],
        "vae_encoder": ["diffusers", "AutoencoderKL"],
    }
    (out / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return out
