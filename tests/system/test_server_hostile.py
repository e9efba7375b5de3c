"""The hostile-input corpus against the real ``pi-axera-sd serve`` (tiny SD model, tiny CLIP).

Every request must get a JSON 4xx or a valid result, never a 5xx; ``/health`` must answer at once
after each; the process must stay up; the log must hold no base64, no unhandled error. Plus the
issue's regressions one by one (surrogate prompts, options, disconnects mid-body, huge label lists).
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from support.clip import random_image
from support.server import SEED_PNG_1X1, ServeProcess

MAX_BODY = 2 * 1024 * 1024
# A base64 run that redaction would have replaced: if one is in the log, it leaked.
_LEAK = re.compile(r"[A-Za-z0-9+/]{64,}")


def _mixed(run: str) -> bool:
    return bool(re.search("[A-Z]", run) and re.search("[a-z]", run) and re.search("[0-9]", run))


@pytest.fixture(scope="module")
def hostile(tiny_model_dir, clip_exports, tags_file, tmp_path_factory):
    env = {
        "MODELS_DIR": str(tiny_model_dir),
        "CLIP_DIR": str(clip_exports["projected"]),
        "INTERROGATE_TAGS_FILE": str(tags_file),
        "PI_AXERA_SD_EMBEDDING_CACHE_DIR": str(tmp_path_factory.mktemp("clip-cache")),
        "PI_AXERA_SD_MAX_BODY_BYTES": str(MAX_BODY),
        "PI_AXERA_SD_MAX_IMAGE_BYTES": str(MAX_BODY // 2),
        "PI_AXERA_SD_MAX_IMAGE_PIXELS": str(2048 * 2048),
        "PI_AXERA_SD_MAX_IMAGES_PER_REQUEST": "2",
        "PI_AXERA_SD_LOG_MAX_STRING": "200",
        "PI_AXERA_SD_API_AUTH": "",
        "PI_AXERA_SD_API_TOKEN": "",
    }
    proc = ServeProcess(env).wait_ready()
    image = {"image": _b64(random_image(32, 32)), "top_k": 3}
    with httpx.Client(base_url=proc.url, timeout=60) as http:
        deadline = time.monotonic() + 120
        while http.post("/sdapi/v1/interrogate", json=image).status_code != 200:  # taxonomy warm
            assert time.monotonic() < deadline, "taxonomy never finished warming up"
            time.sleep(0.2)
    yield proc
    proc.stop()


def _b64(image: Image.Image, fmt: str = "PNG", **save: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return base64.b64encode(buf.getvalue()).decode()


def _png_claiming(width: int, height: int) -> str:
    """A 1x1 PNG whose header claims ``width`` x ``height``: a decompression bomb's signature."""
    raw = bytearray(base64.b64decode(SEED_PNG_1X1))
    ihdr = bytearray(raw[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return base64.b64encode(bytes(raw)).decode()


def _png_with_text_bomb() -> str:
    """A real PNG carrying a zTXt chunk that inflates 50 KB into 64 MB of text."""
    raw = base64.b64decode(SEED_PNG_1X1)
    data = b"parameters\x00\x00" + zlib.compress(b"a" * (64 << 20), 9)
    chunk = struct.pack(">I", len(data)) + b"zTXt" + data + struct.pack(">I", zlib.crc32(b"zTXt" + data))
    return base64.b64encode(raw[:33] + chunk + raw[33:]).decode()


def _images() -> dict[str, str]:
    rgb = random_image(24, 16)
    out = {f"png-{mode}": _b64(rgb.convert(mode)) for mode in ("1", "L", "LA", "P", "RGBA", "I;16")}
    out |= {
        "jpeg-rgb": _b64(rgb, "JPEG"),
        "jpeg-gray": _b64(rgb.convert("L"), "JPEG"),
        "jpeg-cmyk": _b64(rgb.convert("CMYK"), "JPEG"),
        "webp": _b64(rgb, "WEBP"),
        "webp-rgba": _b64(rgb.convert("RGBA"), "WEBP"),
        "gif": _b64(rgb.convert("P"), "GIF"),
        "bmp": _b64(rgb, "BMP"),
        "tiff-float": _b64(rgb.convert("F"), "TIFF"),
        "tiff-int32": _b64(rgb.convert("I"), "TIFF"),
        "ico": _b64(rgb, "ICO"),
        "bomb-png": _png_claiming(60000, 60000),
        "truncated-png": _b64(rgb)[:60],
        "not-an-image": base64.b64encode(b"%PDF-1.4 hello").decode(),
        "data-url": "data:image/png;base64," + SEED_PNG_1X1,
        "data-url-no-base64": "data:image/png," + SEED_PNG_1X1,
        "garbage": "!!!not base64!!!",
    }
    return out


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: Any = None  # bytes are sent as they are, anything else as JSON
    headers: dict[str, str] | None = None


def _corpus() -> list[Case]:
    cases: list[Case] = []
    raw = [
        ("surrogate-escape", b'{"prompt": "\\ud800"}'),
        ("surrogate-pair-halves", b'{"prompt": "\\udfff\\ud800x"}'),
        ("surrogate-utf8-bytes", b'{"prompt": "\xed\xa0\x80"}'),
        ("latin1-bytes", b'{"prompt": "caf\xe9"}'),
        ("utf16-body", '{"prompt": "a cat"}'.encode("utf-16")),
        ("bom-utf8", b'\xef\xbb\xbf{"prompt": "a cat", "seed": 1}'),
        ("nul-and-controls", b'{"prompt": "a\\u0000b\\u0007\\u001b[31m"}'),
        ("rtl-override", '{"prompt": "\u202egnp.exe \u200f\u0627\u0644\u0642\u0637"}'.encode()),
        ("emoji-zwj", '{"prompt": "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f525" }'.encode()),
        ("nan", b'{"prompt": "a", "seed": NaN}'),
        ("infinity-echoed", b'{"prompt": "a", "cfg_scale": Infinity}'),
        ("overflow-float", b'{"prompt": "a", "width": 1e999}'),
        ("huge-int", b'{"prompt": "a", "seed": 1' + b"0" * 5000 + b"}"),
        ("big-int-seed", b'{"prompt": "a", "seed": 123456789012345678901234567890}'),
        ("nested-10000", b'{"prompt": "a", "x": ' + b"[" * 10000 + b"]" * 10000 + b"}"),
        ("nested-objects", b'{"prompt": "a", "x": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"),
        ("truncated-json", b'{"prompt": "a c'),
        ("empty", b""),
        ("whitespace", b"   \n"),
        ("not-json", b"prompt=a+cat"),
        ("array", b'["prompt"]'),
        ("string", b'"prompt"'),
        ("null", b"null"),
        ("over-limit", b'{"prompt": "' + b"a" * (MAX_BODY + 10) + b'"}'),
        ("many-values", b'{"prompt": "a", "x": [' + b"0," * 150_000 + b"0]}"),
        ("megabyte-prompt", b'{"prompt": "' + b"word " * 200_000 + b'"}'),
    ]
    cases += [Case(f"generate/{name}", "POST", "/generate", body) for name, body in raw]
    surrogate = "\ud800"
    a1111_fields = {
        "prompt": surrogate,
        "negative_prompt": surrogate,
        "styles": [surrogate, "\udfff"],
        "cfg_scale": "NaN-ish",
        "width": [1, 2],
        "sampler_name": {"a": 1},
    }
    cases += [
        Case("txt2img/surrogates-echoed", "POST", "/sdapi/v1/txt2img", a1111_fields),
        Case("txt2img/nan-cfg", "POST", "/sdapi/v1/txt2img", b'{"prompt": "a", "cfg_scale": NaN}'),
        Case("txt2img/wrong-types", "POST", "/sdapi/v1/txt2img", {"prompt": 5, "batch_size": "x"}),
        Case("txt2img/huge-batch", "POST", "/sdapi/v1/txt2img", {"prompt": "a", "batch_size": 10**9}),
        Case("txt2img/seed-bool", "POST", "/sdapi/v1/txt2img", {"prompt": "a", "seed": True}),
        Case(
            "txt2img/override-surrogate-vae",
            "POST",
            "/sdapi/v1/txt2img",
            {"override_settings": {"sd_vae": surrogate}},
        ),
        Case("txt2img/negative-count", "POST", "/sdapi/v1/txt2img", {"prompt": "a", "n_iter": -3}),
        Case("img2img/no-images", "POST", "/sdapi/v1/img2img", {"prompt": "a"}),
        Case("img2img/images-dict", "POST", "/sdapi/v1/img2img", {"init_images": {"a": 1}}),
        Case(
            "img2img/strength-inf",
            "POST",
            "/sdapi/v1/img2img",
            b'{"init_images": ["x"], "denoising_strength": -Infinity}',
        ),
        Case("options/surrogate", "POST", "/sdapi/v1/options", {"sd_vae": surrogate, surrogate: 1}),
        Case("options/huge-value", "POST", "/sdapi/v1/options", {"sd_vae": "v" * 100_000}),
        Case("options/not-object", "POST", "/sdapi/v1/options", [1, 2]),
        Case("options/read-back", "GET", "/sdapi/v1/options"),
        Case("png-info/garbage", "POST", "/sdapi/v1/png-info", {"image": "@@@"}),
        Case("png-info/ztxt-bomb", "POST", "/sdapi/v1/png-info", {"image": _png_with_text_bomb()}),
        Case(
            "generate/gzip-bomb",
            "POST",
            "/generate",
            zlib.compress(b'{"prompt": "' + b"a" * (32 << 20) + b'"}', 9),
            {"content-encoding": "deflate", "content-type": "application/json"},
        ),
        Case("png-info/jpeg", "POST", "/sdapi/v1/png-info", {"image": _b64(random_image(8, 8), "JPEG")}),
        Case(
            "interrogate/surrogate-model",
            "POST",
            "/sdapi/v1/interrogate",
            {"image": SEED_PNG_1X1, "model": surrogate},
        ),
        Case(
            "interrogate/nan-threshold", "POST", "/sdapi/v1/interrogate", b'{"image": "x", "threshold": NaN}'
        ),
        Case(
            "interrogate/top-k-huge",
            "POST",
            "/sdapi/v1/interrogate",
            {"image": SEED_PNG_1X1, "top_k": 10**12},
        ),
        Case(
            "structured/surrogate-label",
            "POST",
            "/sdapi/v1/interrogate/structured",
            {"image": SEED_PNG_1X1, "categories": {"g": [surrogate, "man"]}},
        ),
        Case(
            "structured/surrogate-category",
            "POST",
            "/sdapi/v1/interrogate/structured",
            {"image": SEED_PNG_1X1, "categories": {surrogate: ["a", "b"]}},
        ),
        Case(
            "structured/80000-labels",
            "POST",
            "/sdapi/v1/interrogate/structured",
            {"image": SEED_PNG_1X1, "categories": {"g": [f"label {i}" for i in range(80_000)]}},
        ),
        Case(
            "structured/labels-not-strings",
            "POST",
            "/sdapi/v1/interrogate/structured",
            {"image": SEED_PNG_1X1, "categories": {"g": [1, None]}},
        ),
        Case(
            "structured/categories-list",
            "POST",
            "/sdapi/v1/interrogate/structured",
            {"image": SEED_PNG_1X1, "categories": [["a"]]},
        ),
        Case("progress", "GET", "/sdapi/v1/progress"),
        Case("interrupt-idle", "POST", "/sdapi/v1/interrupt", b"garbage"),
        Case("skip-idle", "POST", "/sdapi/v1/skip"),
        Case("options-method", "OPTIONS", "/sdapi/v1/txt2img"),
        Case("wrong-method", "DELETE", "/generate"),
        Case("unknown-path", "GET", "/sdapi/v1/" + "x" * 5000),
        Case("ready", "GET", "/ready"),
        Case("metrics", "GET", "/metrics"),
        Case("sd-models", "GET", "/sdapi/v1/sd-models"),
        Case("query-string", "POST", "/generate?token=secret&x=%ff", {"prompt": "a", "seed": 2}),
    ]
    sliver = _b64(random_image(4000, 1))
    for mode in (0, 1, 2, 3):
        body = {"prompt": "x", "init_image": sliver, "resize_mode": mode, "seed": 1}
        cases.append(Case(f"img2img/1-pixel-sliver-resize-{mode}", "POST", "/generate", body))
    cases.append(Case("interrogate/1-pixel-sliver", "POST", "/sdapi/v1/interrogate", {"image": sliver}))
    for name, image in _images().items():
        cases.append(
            Case(f"img2img/{name}", "POST", "/generate", {"prompt": "x", "init_image": image, "seed": 1})
        )
        if name in ("png-I;16", "bomb-png", "ico", "tiff-float", "data-url-no-base64"):
            cases.append(Case(f"interrogate/{name}", "POST", "/sdapi/v1/interrogate", {"image": image}))
    return cases


def _send(http: httpx.Client, case: Case) -> httpx.Response:
    if isinstance(case.body, bytes):
        return http.request(case.method, case.path, content=case.body, headers=case.headers)
    if case.body is None:
        return http.request(case.method, case.path, headers=case.headers)
    text = json.dumps(case.body)  # ensure_ascii: lone surrogates travel as \\ud800 escapes
    return http.request(
        case.method, case.path, content=text.encode(), headers={"content-type": "application/json"}
    )


def _png(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
    image.load()
    return image


def _assert_valid_result(case: Case, body: Any) -> None:
    """A 2xx carries what the route promises: images that decode, echoes that parse."""
    if case.path.startswith("/generate"):
        assert body["status"] == "ok" and _png(body["base64"]).format == "PNG", case.name
    elif case.path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
        assert all(_png(image).format == "PNG" for image in body["images"]), case.name
        assert isinstance(json.loads(body["info"]), dict), case.name
    elif case.path == "/sdapi/v1/interrogate":
        assert isinstance(body["caption"], str) and isinstance(body["interrogations"], list), case.name
    elif case.path == "/sdapi/v1/interrogate/structured":
        assert set(body["results"]) and isinstance(body["general_tags"], list), case.name


def _assert_healthy(http: httpx.Client) -> float:
    """``/health`` answers (within 2 s: the 100 ms bound is asserted by its own test); its latency."""
    start = time.perf_counter()
    answer = http.get("/health", timeout=2.0)
    assert answer.status_code == 200
    return time.perf_counter() - start


def test_the_hostile_corpus(hostile):
    corpus = _corpus()
    assert len(corpus) >= 60
    outcomes: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    health: list[float] = []
    with httpx.Client(base_url=hostile.url, timeout=60) as http:
        for case in corpus:
            answer = _send(http, case)
            statuses[answer.status_code] += 1
            assert answer.status_code < 500, (case.name, answer.status_code, answer.text[:300])
            if case.method == "OPTIONS" or case.path == "/metrics":
                outcomes["ok"] += 1
            else:
                body = answer.json()  # every answer is JSON, a 4xx included
                if answer.status_code >= 400:
                    assert body.get("error"), (case.name, body)
                    outcomes["refused"] += 1
                else:
                    _assert_valid_result(case, body)
                    outcomes["ok"] += 1
            health.append(_assert_healthy(http))
        assert http.get("/sdapi/v1/options").json()["sd_vae"] == "\ufffd"
    assert hostile.proc.poll() is None
    print(
        f"hostile corpus: {len(corpus)} requests, {dict(outcomes)}, statuses {dict(sorted(statuses.items()))}"
    )
    print(f"hostile corpus: /health after each, slowest {max(health) * 1000:.1f} ms")
    log = hostile.log.text()
    leaks = [run for run in _LEAK.findall(log) if _mixed(run)]
    assert leaks == [], leaks[:3]
    records = hostile.log.records()
    assert not [r for r in records if r.get("level") in ("ERROR", "CRITICAL")], "errors were logged"
    assert max(len(line) for line in hostile.log.lines) < 20_000


def test_three_surrogate_prompts_then_a_normal_one(hostile):
    with httpx.Client(base_url=hostile.url, timeout=60) as http:
        for _ in range(3):
            answer = http.post("/generate", content=b'{"prompt": "\\ud800", "seed": 3}')
            assert answer.status_code == 200, answer.text
        assert http.post("/generate", json={"prompt": "a cat", "seed": 3}).json()["status"] == "ok"
    assert hostile.proc.poll() is None


def _partial_post(url: str, path: str, declared: int, sent: bytes) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {declared}\r\n\r\n".encode() + sent)


def test_a_client_leaving_mid_body_is_info_not_an_error(hostile):
    _partial_post(hostile.url, "/generate", 100_000, b'{"prompt": "' + b"a" * 5000)
    line = hostile.log.wait_for(lambda r: r.get("path") == "/generate" and r.get("status") == 499)
    assert line["level"] == "INFO"
    assert "unhandled" not in hostile.log.text()
    _assert_healthy(httpx.Client(base_url=hostile.url))


def test_health_answers_within_100ms_while_a_huge_request_is_validated(hostile):
    labels = {f"c{c}": [f"label {c} {i}" for i in range(2000)] for c in range(40)}  # 80,000 labels
    body = json.dumps({"image": SEED_PNG_1X1, "categories": labels}).encode()
    done = threading.Event()
    refused: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=hostile.url, timeout=60) as http:
            refused.append(http.post("/sdapi/v1/interrogate/structured", content=body).status_code)
        done.set()

    latencies = []
    with httpx.Client(base_url=hostile.url, timeout=5) as http:
        http.get("/health")  # connection open before timing
        worker = threading.Thread(target=send)
        worker.start()
        while not done.is_set() or len(latencies) < 5:
            start = time.perf_counter()
            assert http.get("/health").status_code == 200
            latencies.append(time.perf_counter() - start)
        worker.join()
    assert refused == [400]
    slowest = max(latencies) * 1000
    print(f"/health during an 80,000-label request: {len(latencies)} polls, slowest {slowest:.1f} ms")
    assert max(latencies) < 0.1, sorted(latencies)[-5:]
