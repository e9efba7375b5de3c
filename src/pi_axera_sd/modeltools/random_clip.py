"""Randomly initialised CLIP models: a tiny one for tests, ViT-B/32's architecture for benchmarks.

Both keep CLIP's tokenizer ids (vocab 49408, BOS 49406, EOS 49407), 77 text positions and 224 px
images with 32 px patches, and set the logit scale to CLIP's trained value (100), so scores and
softmaxes behave like a real model's in scale. The tiny one uses different text, vision and
projection widths so a transposed projection cannot go unnoticed.
"""

from __future__ import annotations

import math

SIZES = ("tiny", "vit-b-32")

_TEXT_COMMON = {
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}


def clip_config(size: str = "tiny"):
    from transformers import CLIPConfig

    if size == "tiny":
        text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
        vision = {
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        }
        projection = 24
    elif size == "vit-b-32":
        # openai/clip-vit-base-patch32's published configuration.
        text = {
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
        }
        vision = {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
        }
        projection = 512
    else:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    return CLIPConfig(
        text_config={**_TEXT_COMMON, **text},
        vision_config={**vision, "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"},
        projection_dim=projection,
        logit_scale_init_value=math.log(100.0),
    )


def build_clip_model(size: str = "tiny", seed: int = 0):
    """A transformers ``CLIPModel`` with random weights (float32, eval mode)."""
    import torch
    from transformers import CLIPModel

    torch.manual_seed(seed)
    return CLIPModel(clip_config(size)).eval()
