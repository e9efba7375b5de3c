"""Request validation (categories, top-k, thresholds, images) and the scoring rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.interrogate.labels import check_templates
from pi_axera_sd.interrogate.loading import load_interrogator
from pi_axera_sd.interrogate.scoring import check_categories, softmax, top_indices
from support.clip import random_image, settings_for, warm


@pytest.fixture(scope="module")
def interrogator(clip_exports, tags_file, tmp_path_factory):
    found = load_interrogator(
        settings_for(clip_exports["projected"], tmp_path_factory.mktemp("cache"), tags_file),
    )
    warm(found)
    return found


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        (["man", "woman"], "must be an object"),
        ("gender", "must be an object"),
        (None, "must be an object"),
        ({}, "categories is empty"),
        ({"gender": "man"}, "must be a list of label strings"),
        ({"gender": []}, "has no labels"),
        ({"gender": ["man", 3]}, "labels must be strings"),
        ({"gender": ["man", "  "]}, "empty label"),
        ({"": ["man"]}, "non-empty strings"),
        ({"gender": {"man": 1}}, "must be a list"),
    ],
)
def test_bad_categories(interrogator, categories, message):
    with pytest.raises(InvalidInput, match=message):
        interrogator.structured(random_image(32, 32), categories)


def test_too_many_labels(clip_exports, tags_file, tmp_path):
    found = load_interrogator(
        settings_for(clip_exports["projected"], tmp_path, tags_file, max_structured_labels=5)
    )
    with pytest.raises(InvalidInput, match="more than 5"):
        found.structured(random_image(32, 32), {"a": ["1", "2", "3"], "b": ["4", "5", "6"]})


def test_labels_are_stripped_and_deduplicated(interrogator):
    result = interrogator.structured(random_image(32, 32), {"g": [" man", "man ", "woman"]})
    assert set(result.results["g"].scores) == {"man", "woman"}
    assert sum(result.results["g"].scores.values()) == pytest.approx(1.0)


def test_single_label_category_is_certain(interrogator):
    result = interrogator.structured(random_image(32, 32), {"only": ["cat"]})
    assert result.results["only"].winner == "cat" and result.results["only"].confidence == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("top_k", "threshold", "message"),
    [
        (0, 0.2, "top_k"),
        (-3, 0.2, "top_k"),
        (2.5, 0.2, "top_k"),
        (True, 0.2, "top_k"),
        (5, math.nan, "threshold"),
    ],
)
def test_bad_parameters(interrogator, top_k, threshold, message):
    with pytest.raises(InvalidInput, match=message):
        interrogator.tags(random_image(32, 32), top_k=top_k, threshold=threshold)


def test_bad_images(interrogator):
    with pytest.raises(InvalidInput, match="decoded image"):
        interrogator.tags(b"\x89PNG not decoded")  # type: ignore[arg-type]
    from PIL import Image

    with pytest.raises(InvalidInput, match="no pixels"):
        interrogator.structured(Image.new("RGB", (0, 5)), {"g": ["man", "woman"]})


def test_threshold_top_k_and_fallback(interrogator):
    image = random_image(80, 60)
    scores = interrogator.scores(image)
    ranked = np.sort(scores)[::-1]
    cut = float(ranked[4])
    tags = interrogator.tags(image, top_k=10, threshold=cut)
    assert [t.score for t in tags] == pytest.approx(ranked[:5].tolist())  # >= threshold
    assert len(interrogator.tags(image, top_k=3, threshold=-1.0)) == 3
    nothing_passes = interrogator.tags(image, top_k=10, threshold=0.99)
    assert len(nothing_passes) == 1 and nothing_passes[0].score == pytest.approx(float(ranked[0]))
    general = interrogator.structured(image, {"g": ["a"]}, general_top_k=10, general_threshold=cut)
    assert len(general.general_tags) == 4  # strictly greater


def test_top_indices_ties_keep_label_order():
    scores = np.array([0.125, 0.5, 0.5, 0.25, 0.5], dtype=np.float32)
    assert top_indices(scores, 3, 0.0) == [1, 2, 4]
    assert top_indices(scores, 10, 0.25) == [1, 2, 4, 3]
    assert top_indices(scores, 10, 0.25, inclusive=False) == [1, 2, 4]
    assert top_indices(scores, 0, 0.0) == []


def test_softmax_is_stable():
    probs = softmax(np.array([1000.0, 1000.0, 0.0]))
    assert probs == pytest.approx([0.5, 0.5, 0.0])


def test_check_categories_keeps_order():
    checked = check_categories({"b": ["y", "x"], "a": ["z"]}, max_labels=10)
    assert list(checked) == ["b", "a"] and checked["b"] == ["y", "x"]


@pytest.mark.parametrize("templates", [[], ["no placeholder"], ["{} and {}"]])
def test_bad_templates(templates):
    with pytest.raises(ValueError):
        check_templates(templates)


def test_bad_templates_at_load_are_a_model_error(clip_exports, tags_file, tmp_path):
    from pi_axera_sd.errors import ModelError

    with pytest.raises(ModelError, match="template"):
        load_interrogator(settings_for(clip_exports["projected"], tmp_path, tags_file), templates=["nope"])
