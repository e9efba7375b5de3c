"""The proof: the service's cosine scores and structured softmax equal transformers' own
``logits_per_image`` on the same tiny random CLIP, images and labels, within 1e-4, in every
exported layout."""

from __future__ import annotations

import numpy as np
import pytest

from pi_axera_sd.interrogate.loading import load_interrogator
from support.clip import random_image, reference_logits, reference_text_embeds, settings_for, warm

TOL = 1e-4
IMAGES = [(320, 240), (200, 410), (224, 224)]
CATEGORIES = {
    "gender": ["man", "woman", "boy", "girl"],
    "hair_color": ["pink", "blonde", "brown", "black"],
    "place": ["beach", "forest", "city street", "kitchen", "mountain"],
}


@pytest.fixture(scope="module")
def images():
    return [random_image(w, h, seed=i) for i, (w, h) in enumerate(IMAGES)]


@pytest.fixture(scope="module")
def reference(tiny_clip, images, small_labels):
    """Cosines (logits / scale) for the taxonomy and the category labels, from transformers."""
    scale = float(tiny_clip.logit_scale.detach().exp())
    taxonomy = reference_logits(tiny_clip, images, [f"a photo of a {label}" for label in small_labels])
    categories = {
        name: reference_logits(tiny_clip, images, [f"a photo of a {label}" for label in labels])
        for name, labels in CATEGORIES.items()
    }
    return scale, taxonomy, categories


@pytest.fixture(scope="module", params=["projected", "split", "static", "projected-openvino-default"])
def interrogator(request, clip_exports, tags_file, tmp_path_factory):
    """Each layout on ONNX Runtime, and the projected one as served by default: runtime auto, which
    picks OpenVINO, whose own default on a CPU with BF16 (this one has avx512_bf16) would be BF16."""
    layout, _, default = request.param.partition("-")
    cache = tmp_path_factory.mktemp(f"cache-{request.param}")
    extra = {"runtime": "auto"} if default else {}
    found = load_interrogator(settings_for(clip_exports[layout], cache, tags_file, **extra))
    if default:
        assert found.image_encoder.session.provider == "CPU/f32"  # the clip_precision default
    warm(found)
    return found


def test_layout_shapes(interrogator, clip_exports):
    text = interrogator.text_encoder
    if interrogator.text_encoder.session.path.parent == clip_exports["static"]:
        assert (text.fixed_batch, text.fixed_length, text.batch) == (1, 77, 1)
    else:
        assert text.fixed_batch is None and text.fixed_length is None and text.batch == 64
    assert interrogator.image_encoder.dim == text.dim == 24
    assert interrogator.logit_scale == pytest.approx(100.0)


def test_cosines_equal_transformers(interrogator, images, reference):
    scale, taxonomy, _ = reference
    assert scale == pytest.approx(100.0, rel=1e-5)
    for i, image in enumerate(images):
        ours = interrogator.scores(image)
        np.testing.assert_allclose(ours, taxonomy[i] / scale, atol=TOL, rtol=0)


def test_tags_are_the_reference_ranking(interrogator, images, reference, small_labels):
    scale, taxonomy, _ = reference
    for i, image in enumerate(images):
        cos = taxonomy[i] / scale
        tags = interrogator.tags(image, top_k=10, threshold=-1.0)
        assert len(tags) == 10
        expected = np.sort(cos)[::-1][:10]
        np.testing.assert_allclose([t.score for t in tags], expected, atol=TOL, rtol=0)
        assert [t.score for t in tags] == sorted((t.score for t in tags), reverse=True)
        for tag in tags:
            assert cos[small_labels.index(tag.tag)] == pytest.approx(tag.score, abs=TOL)


def test_structured_softmax_equals_transformers(interrogator, images, reference, small_labels):
    _, taxonomy, categories = reference
    for i, image in enumerate(images):
        result = interrogator.structured(image, CATEGORIES, general_top_k=10, general_threshold=-1.0)
        for name, labels in CATEGORIES.items():
            logits = categories[name][i]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            got = result.results[name]
            np.testing.assert_allclose([got.scores[label] for label in labels], probs, atol=TOL, rtol=0)
            assert got.winner == labels[int(np.argmax(probs))]
            assert got.confidence == pytest.approx(probs.max(), abs=TOL)
        top = np.argsort(-taxonomy[i], kind="stable")[:10]
        assert len(result.general_tags) == 10
        assert set(result.general_tags[:5]) <= {small_labels[j] for j in top}


def test_layouts_agree(clip_exports, tags_file, tmp_path, images):
    found = {}
    for name in ("projected", "split", "static"):
        found[name] = load_interrogator(settings_for(clip_exports[name], tmp_path / name, tags_file))
        warm(found[name])
    base = found["projected"]
    for other in ("split", "static"):
        np.testing.assert_allclose(found[other].embeddings, base.embeddings, atol=1e-5, rtol=0)
        for image in images:
            np.testing.assert_allclose(found[other].scores(image), base.scores(image), atol=1e-5, rtol=0)


def test_template_ensemble_equals_transformers(clip_exports, tags_file, tmp_path, tiny_clip, small_labels):
    templates = ["a photo of a {}", "a drawing of a {}", "{}"]
    found = load_interrogator(
        settings_for(clip_exports["projected"], tmp_path, tags_file), templates=templates
    )
    labels = small_labels[:20]
    per_template = [
        reference_text_embeds(tiny_clip, [t.format(label) for label in labels]) for t in templates
    ]
    mean = np.mean(per_template, axis=0)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(found.embed_labels(labels), expected, atol=TOL, rtol=0)
    warm(found)
    np.testing.assert_allclose(found.embeddings[:20], expected, atol=TOL, rtol=0)


def test_float16_cache_would_break_the_bound(interrogator, images):
    """The cache stays float32: for a narrow model like this one, float16 rows move some cosine by
    more than 1e-4 (ViT-B/32's 512 dims: ~3.5e-5, see bench/clip_bench.py)."""
    rows = np.asarray(interrogator.embeddings)
    assert rows.dtype == np.float32
    vector = interrogator.image_encoder.encode(images[0])
    error = np.abs(rows.astype(np.float16).astype(np.float32) @ vector - rows @ vector).max()
    assert error > 1e-4
