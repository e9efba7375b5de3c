"""The real ``pi-axera-sd serve`` on loopback with the tiny model, driven over HTTP: the original service's
curl examples, an A1111 client (webuiapi), an Open WebUI-style flow, errors, logs and metrics."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pi_axera_sd.engine.infotext import parse_infotext
from pi_axera_sd.server.routes.generate import GenerateResponse
from support.server import SEED_PNG_1X1, ServeProcess, tiny_server

SEED_TXT2IMG = """curl -X POST http://localhost:5000/generate \\
  -H "Content-Type: application/json" \\
  -d '{"mode": "txt2img", "prompt": "A beautiful landscape"}'"""
SEED_IMG2IMG = """curl -X POST http://localhost:5000/generate \\
  -H "Content-Type: application/json" \\
  -d '{"mode": "img2img", "prompt": "Convert to sketch", "init_image": "SEED_PNG"}'""".replace(
    "SEED_PNG", SEED_PNG_1X1
)
MAX_IMAGES = 3


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with tiny_server(
        tiny_model_dir,
        tmp_path_factory,
        PI_AXERA_SD_SAVE_IMAGES="true",
        PI_AXERA_SD_MAX_IMAGES_PER_REQUEST=str(MAX_IMAGES),
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def png_of(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    assert image.format == "PNG"
    return image


def run_curl(command: str, port: int) -> dict:
    """Run the original service's command through a shell, exactly as a user pastes it (only the port
    differs)."""
    script = command.replace("localhost:5000", f"localhost:{port}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ---- the original service's /generate -------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("command", [SEED_TXT2IMG, SEED_IMG2IMG], ids=["txt2img", "img2img"])
def test_the_seeds_curl_examples_work_as_written(server, command):
    answer = run_curl(command, server.port)
    assert set(answer) == {"status", "base64", "text_time_ms", "total_time_ms", "seed"}
    assert answer["status"] == "ok"
    assert isinstance(answer["seed"], int)
    assert 0 <= answer["text_time_ms"] <= answer["total_time_ms"]
    image = png_of(answer["base64"])
    assert image.size == (128, 128)  # the model's size, whatever was asked
    info = parse_infotext(image.text["parameters"])
    assert info["Seed"] == answer["seed"]
    # img2img at the original service's default strength 0.5: timesteps [499, 259]
    assert info["Steps"] == (4 if "txt2img" in command else 2)
    if "img2img" in command:
        assert info["Denoising strength"] == 0.5


def test_generate_takes_the_original_services_strength_alias(http):
    body = {"mode": "img2img", "prompt": "a sketch", "init_image": SEED_PNG_1X1, "seed": 3}
    answer = http.post("/generate", json={**body, "strength": 0.3})
    info = parse_infotext(png_of(answer.json()["base64"]).text["parameters"])
    assert (info["Steps"], info["Denoising strength"]) == (1, 0.3)  # <= 0.35: one step
    both = http.post("/generate", json={**body, "strength": 0.3, "denoising_strength": 0.9})
    info = parse_infotext(png_of(both.json()["base64"]).text["parameters"])
    assert info["Denoising strength"] == 0.9  # the A1111 name wins when both are sent


def test_generate_is_reproducible_and_ignores_what_it_cannot_honour(http):
    body = {"mode": "txt2img", "prompt": "a red fox in the snow", "seed": 1234567890}
    first = http.post("/generate", json=body).json()
    extra = {
        "steps": 50,
        "sampler": "Euler a",
        "sampler_name": "DPM++ 2M",
        "cfg_scale": 12,
        "n_iter": 4,
        "batch_size": 3,
        "width": 1024,
        "height": 77,
        "negative_prompt": "blurry",
        "restore_faces": "yes",
        "some_client_field": {"nested": [1, 2, 3]},
    }
    second = http.post("/generate", json={**body, **extra}).json()
    assert first["status"] == second["status"] == "ok"
    assert first["seed"] == second["seed"] == 1234567890
    # the same image; the fields it uses only with guidance on are named as ignored, never silently
    assert np.array_equal(np.asarray(png_of(first["base64"])), np.asarray(png_of(second["base64"])))
    assert "warnings" not in first
    assert second["warnings"][0].startswith("cfg_scale 12 and the negative prompt ignored")
    assert png_of(second["base64"]).size == (128, 128)


def test_generate_answers_exactly_its_documented_shape(http):
    documented = http.get("/openapi.json").json()["components"]["schemas"]["GenerateResponse"]
    answer = http.post("/generate", json={"prompt": "a fox", "seed": 3}).json()
    # every property but the warnings, which come only when the model did not follow the request
    assert set(answer) == set(documented["properties"]) - {"warnings"}
    assert set(documented["required"]) <= set(answer)
    assert GenerateResponse.model_validate(answer).seed == 3


def test_generate_img2img_strength_and_resize(http):
    big = io.BytesIO()
    Image.new("RGB", (300, 120), (200, 30, 30)).save(big, format="PNG")
    b64 = base64.b64encode(big.getvalue()).decode()
    answers = [
        http.post(
            "/generate",
            json={"prompt": "x", "init_image": f"data:image/png;base64,{b64}", "seed": 5, **extra},
        ).json()
        for extra in ({"denoising_strength": 0.3, "resize_mode": 1}, {"denoising_strength": 2.5})
    ]
    steps = [parse_infotext(png_of(a["base64"]).text["parameters"])["Steps"] for a in answers]
    assert steps == [1, 4]  # 0.3 -> 1 step; 2.5 is out of range, clamped to 1.0 -> 4 steps


def test_tiny_vae_is_chosen_per_request(http):
    body = {"prompt": "a lighthouse", "seed": 9}
    full = http.post("/generate", json=body).json()["base64"]
    tiny = http.post("/generate", json={**body, "vae": "tiny"}).json()["base64"]
    explicit_full = http.post("/generate", json={**body, "vae": "full"}).json()["base64"]
    assert tiny != full and explicit_full == full
    a1111 = {"prompt": "a lighthouse", "seed": 9}
    plain = http.post("/sdapi/v1/txt2img", json=a1111).json()["images"][0]
    taesd = http.post("/sdapi/v1/txt2img", json={**a1111, "override_settings": {"sd_vae": "taesd"}}).json()
    unknown = http.post(
        "/sdapi/v1/txt2img", json={**a1111, "override_settings": {"sd_vae": "kl-f8.pt"}}
    ).json()
    assert taesd["images"][0] != plain
    assert unknown["images"][0] == plain  # an A1111 VAE name we do not have is ignored
    assert png_of(taesd["images"][0]).size == png_of(plain).size


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ({"mode": "txt2img", "prompt": "x", "vae": "huge"}, 400, "vae"),
        ({"mode": "txt2img", "prompt": "x", "seed": "abc"}, 400, "seed"),
        ({"mode": "txt2img", "prompt": "x", "seed": 1.5}, 400, "seed"),
        ({"mode": "img2img", "prompt": "x", "init_image": "not an image!"}, 400, "base64"),
        (
            {"mode": "img2img", "prompt": "x", "init_image": base64.b64encode(b"GIF89a..").decode()},
            400,
            "GIF",
        ),
        ({"mode": "img2img", "prompt": "x"}, 400, "init_image"),
        ({"mode": "txt2img"}, 400, "prompt"),
        ({"mode": "sketch", "prompt": "x"}, 400, "mode"),
        ({"mode": "txt2img", "prompt": "x", "denoising_strength": "strong"}, 400, "denoising_strength"),
    ],
)
def test_generate_rejects_malformed_used_fields(http, body, status, mentions):
    answer = http.post("/generate", json=body)
    assert answer.status_code == status
    assert answer.json()["status"] == "error"
    assert mentions in answer.json()["error"]
    assert set(answer.json()) == {"status", "error"}


@pytest.mark.parametrize(
    ("content", "mentions"),
    [(b"{not json", "not valid JSON"), (b"", "empty"), (b'["a list"]', "JSON object")],
)
def test_generate_rejects_bodies_that_are_not_json_objects(http, content, mentions):
    answer = http.post("/generate", content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert mentions in answer.json()["error"]


def test_body_size_limit(tiny_model_dir):
    srv = ServeProcess(
        {
            "MODELS_DIR": str(tiny_model_dir),
            "PI_AXERA_SD_MAX_BODY_BYTES": "2048",
            "PI_AXERA_SD_CLIP_DIR": "/nonexistent",
        }
    ).wait_ready()
    try:
        big = {"prompt": "x", "init_image": "A" * 5000}
        answer = httpx.post(f"{srv.url}/generate", json=big, timeout=30)
        assert answer.status_code == 413
        assert "limit" in answer.json()["error"]
        a1111 = httpx.post(f"{srv.url}/sdapi/v1/img2img", json={"init_images": ["A" * 5000]}, timeout=30)
        assert a1111.status_code == 413
        assert a1111.json()["error"] == "PayloadTooLarge"

        def chunked():  # no Content-Length: the limit is enforced as the body streams in
            yield b'{"prompt": "x", "init_image": "'
            yield b"A" * 5000
            yield b'"}'

        streamed = httpx.post(f"{srv.url}/generate", content=chunked(), timeout=30)
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert "limit" in streamed.json()["error"]
        assert httpx.post(f"{srv.url}/generate", json={"prompt": "small"}, timeout=30).status_code == 200
    finally:
        srv.stop()


def test_saving_a_copy_is_opt_in_and_named_by_request(http, server):
    body = {"prompt": "keep me", "seed": 99}
    answer = http.post("/generate", json=body, headers={"X-Request-ID": "req-save-1"})
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "req-save-1"
    saved = list(Path(server.output_dir).rglob("*req-save-1*-99.png"))
    assert len(saved) == 1
    assert base64.b64encode(saved[0].read_bytes()).decode() == answer.json()["base64"]


# ---- A1111 clients --------------------------------------------------------------------------------


def test_webuiapi_client_flow(server):
    webuiapi = pytest.importorskip("webuiapi")
    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="Euler a", steps=20)

    result = api.txt2img(prompt="a red fox", seed=42, batch_size=2, cfg_scale=7, width=512, height=512)
    assert len(result.images) == 2
    assert result.info["seed"] == 42
    assert result.info["all_seeds"] == [42, 43]
    assert result.info["sampler_name"] == "LCM"
    assert (result.info["width"], result.info["height"], result.info["steps"]) == (128, 128, 4)
    assert result.parameters["seed"] == 42 and result.parameters["steps"] == 20  # the request, echoed
    per_image = zip(result.images, result.info["all_seeds"], result.info["infotexts"], strict=True)
    for image, seed, infotext in per_image:
        assert image.size == (128, 128)
        assert image.info["parameters"] == infotext
        assert parse_infotext(infotext)["Seed"] == seed

    edited = api.img2img(images=[result.image], prompt="pencil sketch", denoising_strength=0.5, seed=7)
    assert len(edited.images) == 1
    assert edited.info["all_seeds"] == [7]
    assert edited.info["steps"] == 2
    assert edited.info["denoising_strength"] == 0.5
    assert edited.parameters["init_images"] is None  # not echoed back unless include_init_images

    options = api.get_options()
    models = api.get_sd_models()
    assert options["sd_model_checkpoint"] == models[0]["title"]
    assert api.util_get_current_model() == models[0]["title"]
    assert models[0]["model_name"] == "tiny-sd15-lcm"
    assert [s["name"] for s in api.get_samplers()] == ["LCM"]
    progress = api.get_progress()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0

    info = api.png_info(result.images[1])
    assert info.info == result.info["infotexts"][1]
    assert info.parameters["Seed"] == 43
    assert info.parameters["Prompt"] == "a red fox"
    assert info.parameters["Model"] == "tiny-sd15-lcm"


def test_open_webui_style_flow(http):
    options = http.get("/sdapi/v1/options")
    assert options.status_code == 200
    posted = dict(options.json())
    models = http.get("/sdapi/v1/sd-models").json()
    posted["sd_model_checkpoint"] = models[0]["title"]
    posted["CLIP_stop_at_last_layers"] = 2
    assert http.post("/sdapi/v1/options", json=posted).status_code == 200
    assert http.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 2
    assert {"title", "model_name"} <= set(models[0])
    body = {
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "",
        "width": 768,
        "height": 512,
        "seed": 3,
        "n_iter": 1,
        "batch_size": 1,
        "url": "http://127.0.0.1:5000",  # SillyTavern-style extra keys
        "auth": "someone:secret",
        "override_settings": {"sd_model_checkpoint": models[0]["title"]},
        "alwayson_scripts": {"Unknown": {"args": [1, {"x": None}]}},
        "totally_unknown": [[["deep"]]],
    }
    answer = http.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200
    payload = answer.json()
    assert len(payload["images"]) == 1
    info = json.loads(payload["info"])
    assert info["all_seeds"] == [3]
    assert "auth" not in payload["parameters"] and "url" not in payload["parameters"]


def test_batches_are_capped_and_send_images_is_honoured(http):
    capped = http.post("/sdapi/v1/txt2img", json={"prompt": "many", "seed": 10, "batch_size": 4, "n_iter": 5})
    info = json.loads(capped.json()["info"])
    assert len(capped.json()["images"]) == MAX_IMAGES
    assert info["all_seeds"] == [10, 11, 12]
    silent = http.post("/sdapi/v1/txt2img", json={"prompt": "quiet", "seed": 1, "send_images": False})
    assert silent.status_code == 200
    assert silent.json()["images"] == []
    assert json.loads(silent.json()["info"])["all_seeds"] == [1]


def test_a1111_errors_use_a1111s_shape(http):
    bad_seed = http.post("/sdapi/v1/txt2img", json={"prompt": "x", "seed": "abc"})
    assert bad_seed.status_code == 400
    assert set(bad_seed.json()) == {"error", "detail", "body", "errors"}
    assert "seed" in bad_seed.json()["detail"]
    no_image = http.post("/sdapi/v1/img2img", json={"prompt": "x"})
    assert no_image.status_code == 400
    assert "init_images" in no_image.json()["detail"]
    unknown = http.get("/sdapi/v1/no-such-endpoint")
    assert unknown.status_code == 404
    assert set(unknown.json()) == {"error", "detail", "body", "errors"}


def test_the_listing_endpoints_clients_touch(http):
    for path in ("/sdapi/v1/upscalers", "/sdapi/v1/schedulers", "/sdapi/v1/samplers"):
        listing = http.get(path).json()
        assert isinstance(listing, list) and listing and "name" in listing[0]
    for name in ("latent-upscale-modes", "prompt-styles", "loras"):
        assert http.get(f"/sdapi/v1/{name}").json() == []
    (vae,) = http.get("/sdapi/v1/sd-vae").json()  # the tiny model ships a TAESD decoder
    assert vae["model_name"] == "taesd" and vae["filename"].endswith("vae_decoder_tiny.onnx")
    assert http.get("/sdapi/v1/scripts").json() == {"txt2img": [], "img2img": []}
    memory = http.get("/sdapi/v1/memory").json()
    assert memory["ram"]["total"] > memory["ram"]["free"] > 0
    flags = http.get("/sdapi/v1/cmd-flags").json()
    assert flags["api_auth"] is None and flags["port"] == int(http.base_url.port)


def test_png_info_of_a_plain_image(http):
    answer = http.post("/sdapi/v1/png-info", json={"image": SEED_PNG_1X1})
    assert answer.status_code == 200
    assert answer.json() == {"info": "", "items": {}, "parameters": {}}
    assert http.post("/sdapi/v1/png-info", json={"image": "@@@"}).status_code == 400


# ---- operations -------------------------------------------------------------------------------


def test_health_ready_docs_and_headers(http):
    health = http.get("/health")
    assert health.json()["status"] == "ok"
    ready = http.get("/ready").json()
    assert ready["ready"] is True and ready["model"] == "tiny-sd15-lcm"
    assert "no CLIP model files" in ready["interrogation"]
    assert float(health.headers["X-Process-Time"]) >= 0
    assert len(health.headers["X-Request-ID"]) == 32
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/generate", "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/progress"} <= set(paths)
    schema = paths["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "prompt" in schema["required"]


def test_metrics(http):
    http.post("/generate", json={"prompt": "counted", "seed": 8})
    text = http.get("/metrics").text
    assert 'pi_axera_sd_http_requests_total{method="POST",route="/generate",status="200"}' in text
    assert 'pi_axera_sd_stage_duration_seconds_count{stage="unet_step"}' in text
    assert 'pi_axera_sd_stage_duration_seconds_count{stage="queue_wait"}' in text
    assert 'pi_axera_sd_images_total{mode="txt2img"}' in text
    assert "pi_axera_sd_queue_depth 0.0" in text
    assert "pi_axera_sd_ready 1.0" in text


def test_log_lines_are_json_and_carry_no_image_or_credential(http, server):
    blob = base64.b64encode(os.urandom(6000)).decode()
    body = {
        "prompt": "logged prompt",
        "seed": 77,
        "init_images": [f"data:image/png;base64,{SEED_PNG_1X1}"],
        "auth": "alice:hunter2",
        "alwayson_scripts": {"ControlNet": {"args": [{"input_image": blob}]}},
    }
    answer = http.post("/sdapi/v1/img2img", json=body, headers={"X-Request-ID": "log-check-1"})
    assert answer.status_code == 200
    line = server.log.wait_for(lambda r: r.get("request_id") == "log-check-1")
    assert line["route"] == "/sdapi/v1/img2img" and line["status"] == 200
    assert line["params"]["prompt"] == "logged prompt"
    assert line["params"]["init_images"] == ["<base64 data, 118 chars>"]
    assert line["params"]["alwayson_scripts"]["ControlNet"]["args"][0]["input_image"] == (
        f"<base64 data, {len(blob)} chars>"
    )
    assert line["params"]["auth"] == "<redacted>"
    assert {"queue_ms", "lane_ms", "per_image"} <= set(line["timings"])
    everything = server.log.text()
    assert blob[:64] not in everything
    assert SEED_PNG_1X1[:64] not in everything
    assert "hunter2" not in everything
    assert answer.json()["images"][0][:64] not in everything
    for raw in server.log.lines:
        json.loads(raw)  # every line is JSON


# ---- startup without models ------------------------------------------------------------------------


def test_serve_without_models_says_what_is_missing_and_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()  # a folder that does not exist is refused before (test_base_install)
    env = {**os.environ, "MODELS_DIR": str(tmp_path / "empty"), "PORT": "1", "PI_AXERA_SD_AUTO_DOWNLOAD": "0"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("pi-axera-sd")), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unet" in done.stderr.lower()
    assert "pi-axera-sd models pull axera --dest" in done.stderr
    assert "pi-axera-sd models export" in done.stderr
