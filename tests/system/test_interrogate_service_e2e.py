"""Interrogation end to end: the real server with the tiny SD model AND a tiny CLIP, over HTTP.

The answers must equal what the CLIP engine computes directly (which other tests tie to
transformers within 1e-4), while the taxonomy cache warms up on the lane behind generation.
"""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import pytest

from pi_axera_sd.interrogate.loading import load_interrogator
from support.clip import random_image, settings_for, warm
from support.server import ServeProcess


def _b64(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def clip_server(tiny_model_dir, clip_exports, tags_file, tmp_path_factory):
    cache = tmp_path_factory.mktemp("clip-cache")
    env = {
        "MODELS_DIR": str(tiny_model_dir),
        "CLIP_DIR": str(clip_exports["projected"]),
        "INTERROGATE_TAGS_FILE": str(tags_file),
        "PI_AXERA_SD_EMBEDDING_CACHE_DIR": str(cache),
        "PI_AXERA_SD_CLIP_TEXT_BATCH": "8",  # many small warm-up steps, so generation interleaves
        "PI_AXERA_SD_API_AUTH": "",
        "PI_AXERA_SD_API_TOKEN": "",
    }
    proc = ServeProcess(env).wait_ready()
    yield proc, cache
    proc.stop()


def test_interrogation_over_http_matches_the_engine(clip_server, clip_exports, tags_file):
    proc, cache = clip_server
    image = random_image(320, 240, seed=4)
    body = {"image": _b64(image), "top_k": 5, "threshold": -1.0}
    seen_warming = []
    with httpx.Client(base_url=proc.url, timeout=60) as http:
        # generation is served while the taxonomy warms up
        assert http.post("/generate", json={"prompt": "a fox", "seed": 1}).json()["status"] == "ok"
        deadline = time.monotonic() + 120
        while True:
            answer = http.post("/sdapi/v1/interrogate", json=body)
            if answer.status_code == 200:
                break
            assert answer.status_code == 503, answer.text
            seen_warming.append(answer.json())
            assert time.monotonic() < deadline, "taxonomy never finished warming up"
            time.sleep(0.2)
        flat = answer.json()
        categories = {"animal": ["cat", "dog", "fox"], "setting": ["indoors", "outdoors"]}
        structured = http.post(
            "/sdapi/v1/interrogate/structured", json={"image": _b64(image), "categories": categories}
        ).json()
        bad = http.post("/sdapi/v1/interrogate/structured", json={"image": _b64(image), "categories": {}})
        unknown_model = http.post("/sdapi/v1/interrogate", json={**body, "model": "deepdanbooru"})
    for warming in seen_warming:
        assert "warming up" in str(warming).lower()

    direct = load_interrogator(settings_for(clip_exports["projected"], cache, tags_file))
    warm(direct)  # loads the cache the server built
    expected = direct.tags(image, top_k=5, threshold=-1.0)
    assert [i["tag"] for i in flat["interrogations"]] == [t.tag for t in expected]
    np.testing.assert_allclose(
        [i["score"] for i in flat["interrogations"]], [t.score for t in expected], atol=1e-5
    )
    assert flat["caption"] == ", ".join(t.tag for t in expected)

    want = direct.structured(image, categories)
    for name, result in want.results.items():
        assert structured["results"][name]["winner"] == result.winner
        assert abs(structured["results"][name]["confidence"] - result.confidence) < 1e-5
    assert structured["general_tags"] == want.general_tags
    assert bad.status_code == 400 and "categories" in bad.text
    assert unknown_model.status_code == 404
