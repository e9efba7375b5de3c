"""Export the UNet as a DeepCache pair (``models export --deep-cache``).

DeepCache (Ma et al. 2023, "DeepCache: Accelerating Diffusion Models for Free", arXiv 2312.00858)
observes that the UNet's deep features change little between neighbouring denoising steps. A
"full" step runs the whole UNet and keeps the feature that enters the last up block; a "reuse"
step runs only the shallow path around it: conv_in, the first down block (its skip outputs, not
its downsampler), the last up block fed the cached feature, and conv_out.

    unet_deep.onnx     the whole UNet; outputs out_sample and deep_feature (same inputs as unet.onnx)
    unet_shallow.onnx  the shallow path; inputs as unet.onnx plus deep_feature; output out_sample

The engine uses the pair with ``PI_AXERA_SD_DEEP_CACHE`` (see :mod:`pi_axera_sd.engine.deepcache`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.contract import DEEP_FEATURE, UNET_DEEP, UNET_SHALLOW
from pi_axera_sd.modeltools.onnx_io import export_module


@contextmanager
def _capturing_deep_feature(unet):
    """While open, ``captured["feature"]`` is the hidden state each UNet call feeds its last up block."""
    captured: dict[str, Any] = {}

    def keep(_module, args, kwargs):
        captured["feature"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    handle = unet.up_blocks[-1].register_forward_pre_hook(keep, with_kwargs=True)
    try:
        yield captured
    finally:
        handle.remove()
        captured.clear()


def _deep_module(inner, captured: dict[str, Any]):
    """``inner`` (the exported UNet wrapper) returning the captured deep feature as a second output."""
    import torch

    class DeepUNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            out = self.inner(*args)
            return out, captured["feature"]

    return DeepUNet()


def shallow_forward(unet, sample, emb, encoder_hidden_states, deep_feature):
    """The UNet's shallow path given the time embedding ``emb`` and the cached ``deep_feature``:
    the same modules, in the same order, as diffusers' ``UNet2DConditionModel.forward`` runs them."""
    first, last = unet.down_blocks[0], unet.up_blocks[-1]
    if len(last.resnets) != len(first.resnets) + 1:
        raise ValueError("the last up block does not take exactly conv_in + the first down block's skips")
    h = unet.conv_in(sample)
    skips = (h,)
    attentions = (
        first.attentions if getattr(first, "has_cross_attention", False) else [None] * len(first.resnets)
    )
    for resnet, attention in zip(first.resnets, attentions, strict=True):
        h = resnet(h, emb)
        if attention is not None:
            h = attention(h, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]
        skips += (h,)
    if getattr(last, "has_cross_attention", False):
        h = last(
            hidden_states=deep_feature,
            res_hidden_states_tuple=skips,
            temb=emb,
            encoder_hidden_states=encoder_hidden_states,
        )
    else:
        h = last(hidden_states=deep_feature, res_hidden_states_tuple=skips, temb=emb)
    if unet.conv_norm_out is not None:
        h = unet.conv_act(unet.conv_norm_out(h))
    return unet.conv_out(h)


def _shallow_module(unet, holder: dict[str, Any] | None):
    """The shallow path as a traceable module. ``holder``: the cut graph's injected time activation
    (:func:`export_sd.injected_time_projection`); None: a plain timestep input."""
    import torch

    class ShallowUNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample, time, encoder_hidden_states, deep_feature):
            if holder is not None:
                holder["temb"] = time
                emb = time  # each time_emb_proj reads the holder; this input is only its shape
            else:
                emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=time))
            return shallow_forward(unet, sample, emb, encoder_hidden_states, deep_feature)

    return ShallowUNet()


def export_deep_cache(
    unet,
    out: Path,
    unet_time_input: str,
    example: tuple,
    input_names: Sequence[str],
    *,
    static_shapes: bool = False,
) -> tuple[Path, Path]:
    """Write ``unet_deep.onnx`` (+ ``.data``) and ``unet_shallow.onnx`` for ``unet`` into ``out``.
    ``example``/``input_names``: the inputs ``unet.onnx`` was traced with (sample, time, states)."""
    import torch

    from pi_axera_sd.modeltools.export_sd import (
        _cut_unet_module,
        _plain_unet_module,
        injected_time_projection,
        unet_dynamic_axes,
    )

    embedding = unet_time_input == "embedding"
    wrapper = _cut_unet_module(unet) if embedding else nullcontext(_plain_unet_module(unet))
    deep_path = out / f"{UNET_DEEP}.onnx"
    with wrapper as module, _capturing_deep_feature(unet) as captured:
        deep = _deep_module(module, captured)
        outputs = ["out_sample", DEEP_FEATURE]
        axes = None if static_shapes else unet_dynamic_axes(input_names, outputs)
        export_module(deep, example, deep_path, input_names, outputs, external_data=True, dynamic_axes=axes)
        with torch.no_grad():
            module(*example)
            feature = captured["feature"].clone()
    shallow_path = out / f"{UNET_SHALLOW}.onnx"
    with injected_time_projection(unet) if embedding else nullcontext() as holder:
        export_module(
            _shallow_module(unet, holder),
            (*example, feature),
            shallow_path,
            [*input_names, DEEP_FEATURE],
            ["out_sample"],
            external_data=True,
            dynamic_axes=None
            if static_shapes
            else unet_dynamic_axes([*input_names, DEEP_FEATURE], ["out_sample"]),
        )
    return deep_path, shallow_path
