"""Shared CLIP fixtures and helpers: a tiny random CLIP, exported by the project's own tool in the
layouts the service reads, and transformers' reference scores on the same images and labels.

Imported by the other ``test_clip_*`` / ``test_interrogate_*`` modules (pytest collects no tests here).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pi_axera_sd.config import Settings
from pi_axera_sd.interrogate.taxonomy import load_labels

N_LABELS = 300


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth-ish random RGB image (a noise field upsampled, so resizing filters matter)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    noise = rng.integers(-20, 20, (height, width, 3))
    base = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR), dtype=int)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def settings_for(clip_dir: Path, cache_dir: Path, tags_file: Path | None = None, **extra) -> Settings:
    return Settings(
        **{
            "clip_dir": clip_dir,
            "embedding_cache_dir": cache_dir,
            "interrogate_tags_file": tags_file,
            "runtime": "onnxruntime",
            **extra,
        }
    )


def warm(interrogator) -> None:
    while interrogator.warmup_step():
        pass
    assert interrogator.status().ready, interrogator.status()


@pytest.fixture(scope="session")
def tiny_clip():
    from pi_axera_sd.modeltools.random_clip import build_clip_model

    return build_clip_model("tiny", seed=0)


@pytest.fixture(scope="session")
def clip_exports(tiny_clip, tmp_path_factory) -> dict[str, Path]:
    """The tiny CLIP in three layouts: projected towers (int64 ids, dynamic text axes), split
    projections with int32 ids (the prior NPU layout), and static batch-1 towers (NPU-shaped)."""
    from pi_axera_sd.modeltools.export_clip import export_clip_model

    root = tmp_path_factory.mktemp("clip")
    layouts = {
        "projected": {},
        "split": {"split_projections": True, "int32_ids": True},
        "static": {"split_projections": True, "int32_ids": True, "static_text_batch": 1},
    }
    out = {}
    for name, options in layouts.items():
        out[name] = root / name
        export_clip_model(tiny_clip, out[name], source="tests", **options)
    return out


@pytest.fixture(scope="session")
def small_labels() -> list[str]:
    return load_labels()[:N_LABELS]


@pytest.fixture(scope="session")
def tags_file(small_labels, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tags") / "tags.txt"
    path.write_text("\n".join(small_labels) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def clip_copy(clip_exports, tmp_path) -> Path:
    """A private copy of the projected export (tests that modify files use this)."""
    target = tmp_path / "clip"
    shutil.copytree(clip_exports["projected"], target)
    return target


def reference_logits(model, images: list[Image.Image], texts: list[str]) -> np.ndarray:
    """transformers' own ``logits_per_image`` [images, texts] (CLIPTokenizer + CLIPImageProcessor)."""
    import torch
    from transformers import CLIPImageProcessor, CLIPTokenizer

    from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

    tokenizer = CLIPTokenizer.from_pretrained(str(packaged_tokenizer_dir()))
    processor = CLIPImageProcessor()  # the PIL-backed class when torchvision is absent
    tokens = tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    pixels = torch.as_tensor(np.asarray(processor(images=images, return_tensors="np")["pixel_values"]))
    with torch.no_grad():
        out = model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels
        )
    return out.logits_per_image.numpy().astype(np.float64)


def reference_text_embeds(model, texts: list[str]) -> np.ndarray:
    """transformers' projected, L2-normalised text embeddings."""
    import torch
    from transformers import CLIPTokenizer

    from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

    tokenizer = CLIPTokenizer.from_pretrained(str(packaged_tokenizer_dir()))
    tokens = tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
    embeds = embeds.numpy().astype(np.float64)
    return embeds / np.linalg.norm(embeds, axis=1, keepdims=True)
