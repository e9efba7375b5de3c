"""The packaged ImageNet-21K taxonomy, custom taxonomy files, and the build script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pi_axera_sd.errors import ModelError
from pi_axera_sd.interrogate.taxonomy import DEFAULT_TAXONOMY, labels_digest, load_labels

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_taxonomy.py"


# --- packaged list ---------------------------------------------------------------------------


def test_default_taxonomy_name() -> None:
    assert DEFAULT_TAXONOMY == "imagenet21k"


def test_packaged_list_has_20101_unique_labels() -> None:
    labels = load_labels()
    assert len(labels) == 20101
    assert len(set(labels)) == 20101


def test_packaged_list_starts_with_expected_labels() -> None:
    assert load_labels()[:5] == ["organism", "benthos", "heterotroph", "cell", "person"]


def test_packaged_list_entries_are_clean() -> None:
    for label in load_labels():
        assert label
        assert label == label.strip()
        assert "\n" not in label


def test_packaged_list_lowercased_unique_count() -> None:
    assert len({label.lower() for label in load_labels()}) == 20070


def test_packaged_file_is_plain_list_without_header() -> None:
    from importlib import resources

    text = (resources.files("pi_axera_sd") / "data/imagenet21k_labels.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines == load_labels()
    assert text.endswith("\n")


def test_load_labels_returns_a_fresh_list() -> None:
    first = load_labels()
    first.clear()
    assert len(load_labels()) == 20101


# --- custom files ----------------------------------------------------------------------------


def test_custom_text_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(
        "# my taxonomy\n\ncat\n  dog  \n\t# indented comment\ncat\nDog\n   \nred fox\n",
        encoding="utf-8",
    )
    assert load_labels(path) == ["cat", "dog", "Dog", "red fox"]
    assert load_labels(str(path)) == ["cat", "dog", "Dog", "red fox"]


def test_custom_text_file_utf8(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("café\nnaïve art\n", encoding="utf-8")
    assert load_labels(path) == ["café", "naïve art"]


def test_custom_json_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(["cat", " dog ", "", "cat", "#hashtag"]), encoding="utf-8")
    assert load_labels(path) == ["cat", "dog", "#hashtag"]


@pytest.mark.parametrize("payload", ['{"labels": ["cat"]}', '["cat", 3]', "[not json"])
def test_bad_json_file_raises(tmp_path: Path, payload: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(ModelError, match=re.escape(str(path))):
        load_labels(path)


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n   \n"])
def test_empty_text_file_raises(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelError, match=re.escape(str(path))):
        load_labels(path)


def test_empty_json_list_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ModelError, match=re.escape(str(path))):
        load_labels(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(ModelError, match=re.escape(str(path))):
        load_labels(path)


def test_non_utf8_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ModelError, match=re.escape(str(path))):
        load_labels(path)


def test_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=re.escape(str(tmp_path))):
        load_labels(tmp_path)


# --- digest ----------------------------------------------------------------------------------


def test_digest_is_stable_sha256_hex() -> None:
    digest = labels_digest(["cat", "dog"])
    assert digest == labels_digest(["cat", "dog"])
    assert len(digest) == 64
    int(digest, 16)


def test_digest_changes_with_label_or_order() -> None:
    base = labels_digest(["cat", "dog", "fox"])
    assert labels_digest(["cat", "dog", "wolf"]) != base
    assert labels_digest(["dog", "cat", "fox"]) != base
    assert labels_digest(["cat", "dog"]) != base


def test_digest_of_packaged_list_is_deterministic() -> None:
    assert labels_digest(load_labels()) == labels_digest(load_labels())


# --- build script ----------------------------------------------------------------------------


def _run_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_build_script_dedup_rule(tmp_path: Path) -> None:
    synsets = tmp_path / "synsets.txt"
    lemmas = tmp_path / "lemmas.txt"
    out = tmp_path / "out" / "labels.txt"
    synsets.write_text("n001\nn002\nn003\nn004\nn005\nn006\n\n", encoding="utf-8")
    lemmas.write_text(
        "\n".join(
            [
                "n000\tunused, not in the synset list",
                "n001\tDog, domestic dog, Canis familiaris",
                "n002\tcat",
                "n003\tdog, hound",  # differs from "Dog" only by case: kept
                "n004\tDog, pup",  # exact repeat of the first lemma of n001: dropped
                "n005\t  red fox , Vulpes vulpes",  # stripped
                "n006\tcat, kitty",  # exact repeat: dropped
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = _run_build(
        "--synsets", str(synsets), "--lemmas", str(lemmas), "--out", str(out), "--expected-count", "4"
    )
    assert result.returncode == 0, result.stderr
    assert "labels: 4" in result.stdout
    assert out.read_text(encoding="utf-8") == "Dog\ncat\ndog\nred fox\n"


def test_build_script_refuses_wrong_count(tmp_path: Path) -> None:
    synsets = tmp_path / "synsets.txt"
    lemmas = tmp_path / "lemmas.txt"
    out = tmp_path / "labels.txt"
    synsets.write_text("n001\nn002\n", encoding="utf-8")
    lemmas.write_text("n001\tcat\nn002\tdog\n", encoding="utf-8")
    result = _run_build("--synsets", str(synsets), "--lemmas", str(lemmas), "--out", str(out))
    assert result.returncode == 1
    assert "expected 20101" in result.stderr
    assert not out.exists()


def test_build_script_missing_lemma_fails(tmp_path: Path) -> None:
    synsets = tmp_path / "synsets.txt"
    lemmas = tmp_path / "lemmas.txt"
    out = tmp_path / "labels.txt"
    synsets.write_text("n001\nn999\n", encoding="utf-8")
    lemmas.write_text("n001\tcat\n", encoding="utf-8")
    result = _run_build(
        "--synsets", str(synsets), "--lemmas", str(lemmas), "--out", str(out), "--expected-count", "0"
    )
    assert result.returncode == 1
    assert "n999" in result.stderr
    assert not out.exists()
