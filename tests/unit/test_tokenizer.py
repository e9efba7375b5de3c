"""Our tokenizers-based CLIP tokenizer gives transformers' CLIPTokenizer ids on varied prompts.

The ids transformers gives for a fixed prompt set are committed (``data/clip_token_ids.json``), so the
fast tier checks the tokenizer without transformers; the torch tier checks the file is still right.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from pi_axera_sd.engine.tokenizer import ClipTokenizer
from pi_axera_sd.errors import ModelError
from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

HANDWRITTEN = [
    "",
    " ",
    "A photograph of a red fox in the snow, highly detailed",
    "Make this image look like a pencil sketch",
    "  multiple   spaces\tand\ttabs\nand\nnewlines  ",
    "UPPER lower MiXeD",
    "it's they're we've I'm you'll he'd don't",
    "numbers 1234567890 3.14 1e10 #42 $99.99 50%",
    "punctuation!!! ??? ... --- ,,, ;;; :::",
    "café naïve résumé Ångström façade",
    "日本語のテキスト 中文 한국어 ภาษาไทย العربية עברית",
    "emoji 😀🦊❄️👩‍👩‍👧 flags 🇯🇵",
    "<|startoftext|> literal specials <|endoftext|>",
    "ﬁ ligature, full-width ＡＢＣ, combining e\u0301",
    "masterpiece, best quality, (extremely detailed:1.2), [bad], {weird}",
    "a " * 100,
    "word" * 200,
    "https://example.com/path?query=1&x=y",
    "snake_case and kebab-case and CamelCase",
    "\u200b zero width \u00a0 nbsp",
]


def _random_prompts(count: int, vocab: list[str], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    extras = [
        *list("!?.,;:'\"()[]{}<>@#$%^&*-_=+/\\|~`"),
        "é",
        "ß",
        "ø",
        "漢",
        "字",
        "😀",
        "🦊",
        "\t",
        "\n",
        "  ",
    ]
    prompts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 90)):
            r = rng.random()
            if r < 0.7:
                parts.append(rng.choice(vocab))
            elif r < 0.85:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 8))))
            else:
                parts.append(rng.choice(extras))
        sep = rng.choice([" ", ", ", " ", "  ", ","])
        text = sep.join(parts)
        prompts.append(text.upper() if rng.random() < 0.1 else text)
    return prompts


COMMITTED_IDS = Path(__file__).resolve().parents[1] / "data" / "clip_token_ids.json"
EOS = 49407


def _prompts(count: int) -> list[str]:
    vocab = [w.replace("</w>", "") for w in json.loads((packaged_tokenizer_dir() / "vocab.json").read_text())]
    vocab = [w for w in vocab if w.isascii() and w.isalpha()][:5000]
    return HANDWRITTEN + _random_prompts(count, vocab)


def _committed() -> list[tuple[str, list[int]]]:
    """(prompt, 77 ids) pairs; the file keeps each row up to its first end-of-text token."""
    rows = json.loads(COMMITTED_IDS.read_text())
    return [(prompt, ids + [EOS] * (77 - len(ids))) for prompt, ids in rows]


@pytest.fixture(scope="module")
def ours() -> ClipTokenizer:
    return ClipTokenizer(packaged_tokenizer_dir())


@pytest.fixture(scope="module")
def hf_clip_tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(packaged_tokenizer_dir()))


def _reference_ids(ref, prompt: str) -> list[int]:
    return ref(prompt, padding="max_length", max_length=77, truncation=True).input_ids


def test_ids_equal_transformers_on_hundreds_of_prompts(ours, hf_clip_tokenizer):
    prompts = _prompts(380)
    assert len(prompts) >= 400
    mismatches = []
    for prompt in prompts:
        expected = _reference_ids(hf_clip_tokenizer, prompt)
        got = ours.encode(prompt).tolist()
        if got != expected:
            mismatches.append((prompt[:60], got[:10], expected[:10]))
    assert not mismatches, mismatches[:5]


def test_committed_ids_are_what_transformers_gives(hf_clip_tokenizer):
    rows = _committed()
    assert [prompt for prompt, _ in rows] == _prompts(100)
    stale = [prompt[:60] for prompt, ids in rows if ids != _reference_ids(hf_clip_tokenizer, prompt)]
    assert not stale, stale[:5]


def test_ids_equal_the_committed_reference_ids(ours):
    rows = _committed()
    assert len(rows) >= 120
    mismatches = [(prompt[:60], ids[:8]) for prompt, ids in rows if ours.encode(prompt).tolist() != ids]
    assert not mismatches, mismatches[:5]


def test_shape_truncation_and_specials(ours):
    long_ids = ours.encode("word " * 300)
    assert long_ids.shape == (77,) and long_ids.dtype == np.int64
    assert long_ids[0] == 49406 and long_ids[-1] == 49407
    empty = ours.encode("")
    assert empty[0] == 49406 and (empty[1:] == 49407).all()


def test_batch_equals_single(ours):
    texts = ["a cat", "", "a much longer prompt about a fox in the snow " * 5]
    batch = ours.encode_batch(texts)
    assert batch.shape == (3, 77)
    for row, text in zip(batch, texts, strict=True):
        assert (row == ours.encode(text)).all()


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ModelError, match=r"tokenizer\.json, or vocab\.json and merges\.txt; none is there"):
        ClipTokenizer(tmp_path)


def test_tokenizer_json_alone_gives_the_pairs_ids(tmp_path, ours):
    """transformers 5 and optimum-intel 2.2 save only tokenizer.json (and its config): read directly,
    with the ids of the vocab.json + merges.txt pair on every prompt."""
    from pi_axera_sd.engine.tokenizer import write_tokenizer_json

    folder = tmp_path / "tokenizer"
    folder.mkdir()
    for name in ("vocab.json", "merges.txt"):
        (folder / name).write_bytes((packaged_tokenizer_dir() / name).read_bytes())
    write_tokenizer_json(folder)
    for name in ("vocab.json", "merges.txt"):
        (folder / name).unlink()
    fast = ClipTokenizer(folder)
    assert fast.source == folder / "tokenizer.json"
    rows = _committed()
    assert [p for p, ids in rows if fast.encode(p).tolist() != ids] == []
    prompts = _prompts(100)
    assert (fast.encode_batch(prompts) == ours.encode_batch(prompts)).all()


def test_transformers_own_tokenizer_json_gives_the_same_ids(tmp_path, hf_clip_tokenizer, ours):
    """The file as transformers writes it today (RobertaProcessing, its own specials), read by us."""
    hf_clip_tokenizer.save_pretrained(str(tmp_path))
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).unlink(missing_ok=True)
    assert (tmp_path / "tokenizer.json").is_file()
    fast = ClipTokenizer(tmp_path)
    prompts = _prompts(100)
    assert (fast.encode_batch(prompts) == ours.encode_batch(prompts)).all()
    assert fast.encode(prompts[3]).tolist() == _reference_ids(hf_clip_tokenizer, prompts[3])
