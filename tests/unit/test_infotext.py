"""Tests for engine.infotext: building and parsing A1111 generation-parameters text."""

from __future__ import annotations

import pytest

from pi_axera_sd import __version__
from pi_axera_sd.engine.infotext import build_infotext, parse_infotext

BASE = {"steps": 4, "seed": 42, "width": 512, "height": 512, "model": "my-model"}


def test_exact_format() -> None:
    text = build_infotext(prompt="a cat", negative_prompt="blurry", **BASE)
    assert text == (
        "a cat\n"
        "Negative prompt: blurry\n"
        "Steps: 4, Sampler: LCM, CFG scale: 1, Seed: 42, Size: 512x512, Model: my-model, "
        f"Version: pi-axera-sd {__version__}"
    )


def test_no_negative_line_when_empty() -> None:
    text = build_infotext(prompt="a cat", **BASE)
    assert "Negative prompt" not in text
    assert text.split("\n") == ["a cat", text.split("\n")[1]]
    assert parse_infotext(text)["Negative prompt"] == ""


def test_floats_without_trailing_zeros() -> None:
    text = build_infotext(prompt="p", cfg_scale=1.0, denoising_strength=0.5, **BASE)
    assert "CFG scale: 1," in text
    assert "Denoising strength: 0.5," in text
    text = build_infotext(prompt="p", cfg_scale=1.5, denoising_strength=1.0, **BASE)
    assert "CFG scale: 1.5," in text
    assert "Denoising strength: 1," in text


def test_denoising_strength_only_when_given() -> None:
    assert "Denoising strength" not in build_infotext(prompt="p", **BASE)
    assert "Denoising strength" not in parse_infotext(build_infotext(prompt="p", **BASE))
    parsed = parse_infotext(build_infotext(prompt="p", denoising_strength=0.25, **BASE))
    assert parsed["Denoising strength"] == 0.25


def test_basic_round_trip_types() -> None:
    parsed = parse_infotext(
        build_infotext(prompt="a cat", negative_prompt="dog", cfg_scale=1.5, denoising_strength=0.75, **BASE)
    )
    assert parsed == {
        "Prompt": "a cat",
        "Negative prompt": "dog",
        "Steps": 4,
        "Sampler": "LCM",
        "CFG scale": 1.5,
        "Seed": 42,
        "Size": "512x512",
        "Size-1": 512,
        "Size-2": 512,
        "Model": "my-model",
        "Denoising strength": 0.75,
        "Version": f"pi-axera-sd {__version__}",
    }
    assert isinstance(parsed["Steps"], int) and isinstance(parsed["CFG scale"], float)


def test_size_split_non_square() -> None:
    parsed = parse_infotext(build_infotext(prompt="p", **{**BASE, "width": 768, "height": 448}))
    assert (parsed["Size"], parsed["Size-1"], parsed["Size-2"]) == ("768x448", 768, 448)


TRICKY_PROMPTS = [
    "masterpiece, best quality, (cat:1.2), [dog|fox]",
    'a sign saying "hello", then: more',
    "line one\nline two, with comma\n\nline four after a blank line",
    "Steps: 99, Sampler: fake, Seed: 1",  # a prompt that looks like a parameters line
    "日本語のプロンプト、猫 🐱 ümlaut – dash",
    "  leading and trailing spaces  ",
    'backslash \\ and "quotes" and \\n literal',
    "",
]


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_prompt_round_trip(prompt: str) -> None:
    parsed = parse_infotext(build_infotext(prompt=prompt, negative_prompt="bad, ugly: 2", **BASE))
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == "bad, ugly: 2"
    assert parsed["Seed"] == 42


@pytest.mark.parametrize("negative", TRICKY_PROMPTS[:-1])
def test_negative_prompt_round_trip(negative: str) -> None:
    parsed = parse_infotext(build_infotext(prompt="a\nb", negative_prompt=negative, **BASE))
    assert parsed["Prompt"] == "a\nb"
    assert parsed["Negative prompt"] == negative


@pytest.mark.parametrize(
    "model",
    [
        "runwayml/stable-diffusion-v1-5:lcm",
        "name, with comma",
        'quoted "name"',
        '"starts with a quote',
        "multi\nline",
        "1.5",
        "42",
        " padded ",
        "ünïcødé",
    ],
)
def test_value_quoting_round_trips(model: str) -> None:
    text = build_infotext(prompt="p", **{**BASE, "model": model})
    params_line = text.split("\n")[-1]
    # Quoting keeps the parameters on one line...
    assert params_line.startswith("Steps: 4,")
    parsed = parse_infotext(text)
    # ...and the value comes back exactly, as a string, with the neighbours intact.
    assert parsed["Model"] == model
    assert parsed["Size"] == "512x512"
    assert parsed["Version"] == f"pi-axera-sd {__version__}"


def test_quoting_uses_json_strings_like_a1111() -> None:
    text = build_infotext(prompt="p", **{**BASE, "model": 'a, "b"'})
    assert 'Model: "a, \\"b\\""' in text
    text = build_infotext(prompt="p", **{**BASE, "model": "plain name"})
    assert "Model: plain name," in text


def test_extra_pairs() -> None:
    text = build_infotext(
        prompt="p",
        extra={"Clip skip": 2, "Lora hashes": "a: 123, b: 456", "Eta": 0.1, "Skipped": None},
        **BASE,
    )
    assert "Skipped" not in text
    assert text.endswith(f"Version: pi-axera-sd {__version__}")
    parsed = parse_infotext(text)
    assert parsed["Clip skip"] == 2
    assert parsed["Lora hashes"] == "a: 123, b: 456"
    assert parsed["Eta"] == 0.1


@pytest.mark.parametrize("key", ["bad:key", "bad,key", "", "multi\nline", ' "q"'])
def test_extra_bad_keys_rejected(key: str) -> None:
    with pytest.raises(ValueError):
        build_infotext(prompt="p", extra={key: 1}, **BASE)


def test_parse_a1111_text() -> None:
    text = (
        "a castle, sunset\n"
        "Negative prompt: lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x768, Model hash: abc123, "
        'Model: sd15, Lora hashes: "foo: 1a2b, bar: 3c4d", Version: v1.9.4'
    )
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a castle, sunset"
    assert parsed["Negative prompt"] == "lowres"
    assert parsed["Sampler"] == "Euler a"
    assert parsed["CFG scale"] == 7
    assert parsed["Size-1"] == 512 and parsed["Size-2"] == 768
    assert parsed["Model hash"] == "abc123"
    assert parsed["Lora hashes"] == "foo: 1a2b, bar: 3c4d"
    assert parsed["Version"] == "v1.9.4"


def test_parse_text_without_parameters_is_all_prompt() -> None:
    assert parse_infotext("just a prompt, nothing else") == {
        "Prompt": "just a prompt, nothing else",
        "Negative prompt": "",
    }


def test_parse_tolerates_crlf_and_trailing_newline() -> None:
    text = build_infotext(prompt="a\nb", negative_prompt="n", **BASE).replace("\n", "\r\n") + "\r\n"
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a\nb"
    assert parsed["Negative prompt"] == "n"
    assert parsed["Steps"] == 4


def test_result_infotext_names_deepcache_only_when_it_was_used():
    """DeepCache changes the image, so the infotext says so; without it, nothing is added."""
    import numpy as np

    from pi_axera_sd.engine.infotext import result_infotext
    from pi_axera_sd.engine.pipeline import GenerationParams, GenerationResult, StageTimings

    def infotext(deep_cache: int) -> dict[str, object]:
        result = GenerationResult(
            pixels=np.zeros((8, 8, 3), np.uint8),
            params=GenerationParams(prompt="a fox", seed=7),
            timesteps=(999, 759, 499, 259),
            timings=StageTimings(),
            model_name="m",
            deep_cache=deep_cache,
        )
        return parse_infotext(result_infotext(result))

    assert infotext(4)["DeepCache"] == 4
    plain = infotext(0)
    assert "DeepCache" not in plain and plain["Seed"] == 7 and plain["Steps"] == 4
