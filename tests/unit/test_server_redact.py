"""Log redaction and request parsing rules, as pure functions."""

from __future__ import annotations

import base64
import os

import pytest

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.server.core.redact import looks_like_base64, redact
from pi_axera_sd.server.dialects.schemas import GenerateRequest, Img2ImgRequest, Txt2ImgRequest
from support.server import SEED_PNG_1X1


def test_the_seeds_example_is_logged_as_the_seed_shows():
    body = {"mode": "img2img", "prompt": "a cute cat", "init_image": SEED_PNG_1X1, "steps": 4, "seed": 42}
    assert redact(body) == {
        "mode": "img2img",
        "prompt": "a cute cat",
        "init_image": "<base64 data, 96 chars>",
        "steps": 4,
        "seed": 42,
    }


def test_base64_is_found_wherever_it_is():
    blob = base64.b64encode(os.urandom(3000)).decode()
    body = {
        "init_images": [f"data:image/png;base64,{blob}", blob],
        "alwayson_scripts": {"ControlNet": {"args": [{"input_image": blob, "weight": 1.0}]}},
        "wrapped": "\n".join(blob[i : i + 76] for i in range(0, len(blob), 76)),
        "short_data_uri": "data:image/png;base64,AAAA",
    }
    out = redact(body)
    assert out["init_images"] == [
        f"<base64 data, {len(blob) + 22} chars>",
        f"<base64 data, {len(blob)} chars>",
    ]
    assert out["alwayson_scripts"]["ControlNet"]["args"][0] == {
        "input_image": f"<base64 data, {len(blob)} chars>",
        "weight": 1.0,
    }
    assert out["wrapped"].startswith("<base64 data, ")
    assert out["short_data_uri"] == "<base64 data, 26 chars>"
    assert blob[:40] not in repr(out)


def test_prompts_and_short_values_are_kept():
    long_prompt = "masterpiece, best quality, " * 20
    assert not looks_like_base64(long_prompt)
    assert not looks_like_base64("Euler a")
    assert not looks_like_base64("abc123")  # short
    assert redact({"prompt": long_prompt, "sampler_name": "LCM"}) == {
        "prompt": long_prompt,
        "sampler_name": "LCM",
    }


def test_credentials_are_redacted_by_key():
    body = {
        "auth": "alice:s3cret",
        "url": "http://x",
        "nested": {"api_key": "k", "Password": "p"},
        "token": "",
    }
    assert redact(body) == {
        "auth": "<redacted>",
        "url": "http://x",
        "nested": {"api_key": "<redacted>", "Password": "<redacted>"},
        "token": "",
    }


def test_generate_request_rules():
    ok = GenerateRequest.parse(
        {"prompt": "x", "seed": "12", "denoising_strength": 7, "resize_mode": 9, "cfg": "?"}
    )
    assert (ok.seed, ok.denoising_strength, ok.resize_mode, ok.resolved_mode()) == (12, 1.0, 0, "txt2img")
    assert GenerateRequest.parse({"prompt": "x", "init_image": "abc"}).resolved_mode() == "img2img"
    assert GenerateRequest.parse({"prompt": "x", "seed": 7.0}).seed == 7
    for body, field in [
        ({"prompt": "x", "seed": "abc"}, "seed"),
        ({"prompt": "x", "seed": 1.5}, "seed"),
        ({"prompt": "x", "seed": True}, "seed"),
        ({}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "x", "mode": "inpaint"}, "mode"),
        ({"prompt": "x", "denoising_strength": "lots"}, "denoising_strength"),
        ({"prompt": "x", "init_image": {"a": 1}}, "init_image"),
    ]:
        with pytest.raises(InvalidInput, match=field):
            GenerateRequest.parse(body)
    with pytest.raises(InvalidInput, match="JSON object"):
        GenerateRequest.parse(["prompt"])


def test_a1111_request_rules():
    req = Txt2ImgRequest.parse(
        {"batch_size": 0, "n_iter": "2", "send_images": "false", "url": "x", "steps": "?"}
    )
    assert (req.batch_size, req.n_iter, req.send_images, req.seed) == (1, 2, False, -1)
    assert Img2ImgRequest.parse({"init_images": "abc"}).init_images == ["abc"]
    with pytest.raises(InvalidInput, match="batch_size"):
        Txt2ImgRequest.parse({"batch_size": "many"})
    with pytest.raises(InvalidInput, match="init_images"):
        Img2ImgRequest.parse({"init_images": [1, 2]})
    with pytest.raises(InvalidInput, match="send_images"):
        Txt2ImgRequest.parse({"send_images": "perhaps"})
