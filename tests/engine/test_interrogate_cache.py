"""Taxonomy embedding cache: warm-up progress, hits, misses, invalidation, corruption, resume."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from pi_axera_sd.errors import ModelError
from pi_axera_sd.interrogate import fingerprint
from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.interrogate.loading import load_interrogator
from support.clip import N_LABELS, random_image, settings_for, warm

STEP = 64  # labels per warm-up step with the dynamic-batch text tower


def count_text_runs(interrogator) -> list[int]:
    """Count the text tower's graph runs from now on."""
    session = interrogator.text_encoder.session
    calls = [0]
    run = session.run

    def counting(feeds, outputs=None):
        calls[0] += 1
        return run(feeds, outputs)

    session.run = counting
    return calls


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.suffix in (".npy", ".json") and p.name[0] != ".")


def test_first_build_progress_then_cache_hit(clip_exports, tags_file, tmp_path):
    settings = settings_for(clip_exports["projected"], tmp_path / "cache", tags_file)
    first = load_interrogator(settings)
    state = first.status()
    assert (state.ready, state.done, state.total) == (False, 0, N_LABELS)
    assert "warming up" in state.message

    with pytest.raises(WarmingUp, match=r"warming up.*0/300") as info:
        first.tags(random_image(64, 64))
    assert info.value.state.total == N_LABELS
    early = first.structured(random_image(64, 64), {"g": ["man", "woman"]})
    assert early.general_tags == [] and early.results["g"].winner in ("man", "woman")

    assert first.warmup_step() is True
    state = first.status()
    assert state.done == STEP and state.progress == pytest.approx(STEP / N_LABELS)
    assert f"{STEP}/{N_LABELS}" in state.message
    key = first.describe()["cache_key"]
    assert f"{key}.partial.npy" in cache_files(tmp_path / "cache")

    warm(first)
    assert cache_files(tmp_path / "cache") == sorted([f"{key}.json", f"{key}.npy", "file_hashes.json"])
    meta = json.loads((tmp_path / "cache" / f"{key}.json").read_text())
    assert meta["count"] == N_LABELS and meta["templates"] == ["a photo of a {}"] and meta["dim"] == 24
    assert first.warmup_step() is False

    started = time.perf_counter()
    second = load_interrogator(settings)
    assert time.perf_counter() - started < 2.0  # opening the sessions included
    assert second.status().ready and "loaded from" in second.status().message
    assert second.timings["cache_load_s"] < 0.5
    assert isinstance(second.embeddings, np.memmap)
    runs = count_text_runs(second)
    assert second.warmup_step() is False and runs[0] == 0
    np.testing.assert_array_equal(second.embeddings, first.embeddings)
    assert second.tags(random_image(64, 64))


def test_changed_label_list_rebuilds(clip_exports, tags_file, small_labels, tmp_path):
    cache = tmp_path / "cache"
    first = load_interrogator(settings_for(clip_exports["projected"], cache, tags_file))
    warm(first)
    other = tmp_path / "other.txt"
    other.write_text("\n".join([*small_labels[:-1], "a label that was not there"]), encoding="utf-8")
    second = load_interrogator(settings_for(clip_exports["projected"], cache, other))
    assert not second.status().ready
    warm(second)
    assert len([n for n in cache_files(cache) if n.endswith(".npy")]) == 2
    np.testing.assert_array_equal(second.embeddings[:-1], first.embeddings[:-1])


def test_changed_encoder_rebuilds_and_touch_does_not(clip_copy, tags_file, tmp_path):
    from pi_axera_sd.modeltools.export_clip import export_clip_model
    from pi_axera_sd.modeltools.random_clip import build_clip_model

    settings = settings_for(clip_copy, tmp_path / "cache", tags_file)
    first = load_interrogator(settings)
    warm(first)
    before = np.array(first.embeddings)

    text = clip_copy / "clip_base_text.onnx"
    os.utime(text, ns=(text.stat().st_atime_ns, text.stat().st_mtime_ns + 10**9))  # same bytes
    assert load_interrogator(settings).status().ready

    export_clip_model(build_clip_model("tiny", seed=1), clip_copy, source="tests (seed 1)")
    rebuilt = load_interrogator(settings)
    assert not rebuilt.status().ready
    warm(rebuilt)
    assert not np.allclose(rebuilt.embeddings, before, atol=1e-3)


def test_file_hashes_are_remembered(clip_exports, tags_file, tmp_path, monkeypatch):
    calls = []
    real = fingerprint.sha256_file
    monkeypatch.setattr(fingerprint, "sha256_file", lambda path: calls.append(path) or real(path))
    settings = settings_for(clip_exports["projected"], tmp_path / "cache", tags_file)
    load_interrogator(settings)
    assert len(calls) == 2  # text tower, tokenizer.json (the form the tokenizer reads)
    load_interrogator(settings)
    assert len(calls) == 2  # remembered: nothing hashed again


def _corrupt_truncate(npy: Path, meta: Path) -> None:
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])


def _corrupt_sidecar(npy: Path, meta: Path) -> None:
    meta.write_text("{not json")


def _corrupt_other_key(npy: Path, meta: Path) -> None:
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "key": "0" * 64}))


def _corrupt_zero_rows(npy: Path, meta: Path) -> None:
    rows = np.load(npy)
    np.save(npy, np.zeros_like(rows))


def _corrupt_header(npy: Path, meta: Path) -> None:
    npy.write_bytes(b"garbage" * 100)


def _corrupt_no_sidecar(npy: Path, meta: Path) -> None:
    meta.unlink()


@pytest.mark.parametrize(
    "corrupt",
    [
        _corrupt_truncate,
        _corrupt_sidecar,
        _corrupt_other_key,
        _corrupt_zero_rows,
        _corrupt_header,
        _corrupt_no_sidecar,
    ],
)
def test_corrupt_cache_is_rebuilt(clip_exports, tags_file, tmp_path, corrupt):
    settings = settings_for(clip_exports["projected"], tmp_path / "cache", tags_file)
    first = load_interrogator(settings)
    warm(first)
    key = first.describe()["cache_key"]
    expected = np.array(first.embeddings)
    del first
    corrupt(tmp_path / "cache" / f"{key}.npy", tmp_path / "cache" / f"{key}.json")
    again = load_interrogator(settings)
    assert not again.status().ready  # discarded, not crashed on
    warm(again)
    np.testing.assert_allclose(again.embeddings, expected, atol=1e-6)
    assert load_interrogator(settings).status().ready


def test_partial_build_resumes(clip_exports, tags_file, tmp_path):
    settings = settings_for(clip_exports["projected"], tmp_path / "cache", tags_file)
    first = load_interrogator(settings)
    first.warmup_step()
    first.warmup_step()
    assert first.status().done == 2 * STEP
    del first  # "restart"

    resumed = load_interrogator(settings)
    assert resumed.status().done == 2 * STEP and not resumed.status().ready
    runs = count_text_runs(resumed)
    warm(resumed)
    assert runs[0] == -(-(N_LABELS - 2 * STEP) // STEP)

    fresh = load_interrogator(settings_for(clip_exports["projected"], tmp_path / "fresh", tags_file))
    warm(fresh)
    np.testing.assert_allclose(resumed.embeddings, fresh.embeddings, atol=1e-6)


def test_bad_partial_build_restarts(clip_exports, tags_file, tmp_path):
    settings = settings_for(clip_exports["projected"], tmp_path / "cache", tags_file)
    first = load_interrogator(settings)
    first.warmup_step()
    key = first.describe()["cache_key"]
    (tmp_path / "cache" / f"{key}.partial.json").write_text('{"done": 12}')
    again = load_interrogator(settings)
    assert again.status().done == 0
    warm(again)


def test_unwritable_cache_builds_in_memory(clip_exports, tags_file, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    found = load_interrogator(settings_for(clip_exports["projected"], blocker, tags_file))
    warm(found)
    assert found.embeddings.shape == (N_LABELS, 24)
    assert found.tags(random_image(50, 50))


def test_structured_labels_are_cached(clip_exports, tags_file, small_labels, tmp_path):
    found = load_interrogator(settings_for(clip_exports["projected"], tmp_path / "cache", tags_file))
    warm(found)
    runs = count_text_runs(found)
    image = random_image(120, 90)
    form = {"gender": ["man", "woman", "boy", "girl"], "hair": ["pink", "blonde"]}

    first = found.structured(image, form)
    assert runs[0] == 1  # six new labels, one batch
    second = found.structured(image, form)
    assert runs[0] == 1  # a repeated form: image encode + one small product
    assert second == first
    assert found.label_cache.hits >= 6

    from_taxonomy = found.structured(image, {"t": small_labels[:5]})
    assert runs[0] == 1  # taxonomy labels reuse the taxonomy rows
    direct = found.embed_labels(small_labels[:5])
    np.testing.assert_allclose(direct, found.embeddings[:5], atol=1e-6)
    assert from_taxonomy.results["t"].winner in small_labels[:5]


def test_label_cache_evicts_least_recent(clip_exports, tags_file, tmp_path):
    from pi_axera_sd.interrogate.labels import LabelCache

    embedded: list[str] = []

    def embed(labels):
        embedded.extend(labels)
        return np.eye(4, dtype=np.float32)[: len(labels)]

    cache = LabelCache(embed, capacity=2)
    cache.get_many(["a", "b"])
    cache.get_many(["a"])  # a is now the most recent
    cache.get_many(["c"])  # evicts b
    cache.get_many(["a", "b"])
    assert embedded == ["a", "b", "c", "b"] and len(cache) == 2


def test_full_taxonomy_build_with_tiny_model(clip_exports, tmp_path):
    settings = settings_for(clip_exports["projected"], tmp_path / "cache", None)
    found = load_interrogator(settings)
    assert found.status().total == 20101
    started = time.perf_counter()
    warm(found)
    assert time.perf_counter() - started < 20
    assert found.embeddings.shape == (20101, 24)
    tags = found.tags(random_image(300, 200), top_k=10, threshold=-1)
    assert len(tags) == 10
    assert load_interrogator(settings).status().ready


def test_no_clip_model_means_no_interrogator(tmp_path):
    assert load_interrogator(settings_for(tmp_path / "nothing", tmp_path / "cache")) is None


def test_explicit_missing_tower_is_an_error(clip_exports, tmp_path):
    settings = settings_for(
        tmp_path / "nothing", tmp_path / "cache", clip_text_model=tmp_path / "missing_text.onnx"
    )
    with pytest.raises(ModelError, match="CLIP_TEXT_MODEL") as info:
        load_interrogator(settings)
    assert "image tower" in str(info.value)


def test_explicit_towers_outside_the_folder(clip_exports, tags_file, tmp_path):
    src = clip_exports["split"]
    settings = settings_for(
        tmp_path / "nothing",
        tmp_path / "cache",
        tags_file,
        clip_vision_model=src / "clip_base_vision.onnx",
        clip_text_model=src / "clip_base_text.onnx",
    )
    found = load_interrogator(settings)
    assert found.text_encoder.projection is not None  # found beside the tower
    warm(found)


def test_half_a_layout_is_an_error(clip_exports, tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "clip_base_vision.onnx").write_bytes(
        (clip_exports["projected"] / "clip_base_vision.onnx").read_bytes()
    )
    with pytest.raises(ModelError, match="text tower"):
        load_interrogator(settings_for(folder, tmp_path / "cache"))


def test_mismatched_towers_are_an_error(clip_exports, tmp_path):
    import shutil

    folder = tmp_path / "clip"
    shutil.copytree(clip_exports["split"], folder)
    np.save(folder / "text_projection.npy", np.zeros((32, 16), np.float32))
    with pytest.raises(ModelError, match="do not match"):
        load_interrogator(settings_for(folder, tmp_path / "cache"))


def test_failed_build_is_reported(clip_exports, tags_file, tmp_path):
    found = load_interrogator(settings_for(clip_exports["projected"], tmp_path / "cache", tags_file))

    def broken(feeds, outputs=None):
        raise RuntimeError("NPU went away")

    found.text_encoder.session.run = broken
    assert found.warmup_step() is False
    state = found.status()
    assert state.error and "NPU went away" in state.error and not state.ready
    with pytest.raises(ModelError, match="unavailable"):
        found.tags(random_image(40, 40))
    assert found.warmup_step() is False
