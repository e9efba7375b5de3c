"""The other dialects clients of this hardware speak, against the real ``pi-axera-sd serve``:
the OpenAI Images API through the official ``openai`` client, AXERA's sample-server ``/generate``,
and the ``randn_source`` option (settings, options, override_settings, infotext)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from pi_axera_sd.engine.infotext import parse_infotext
from support.server import SEED_PNG_1X1, ServeProcess, tiny_server

TOKEN = "sk-test-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LINK_TTL_S = 3.0
MAX_IMAGES = 3


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with tiny_server(
        tiny_model_dir,
        tmp_path_factory,
        headers=AUTH,
        PI_AXERA_SD_SAVE_IMAGES="false",
        PI_AXERA_SD_MAX_IMAGES_PER_REQUEST=str(MAX_IMAGES),
        PI_AXERA_SD_API_TOKEN=TOKEN,
        PI_AXERA_SD_IMAGE_LINK_TTL_S=str(LINK_TTL_S),
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=60)


def pixels(b64: str) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def png_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    gradient = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :, None].repeat(size[1], 0).repeat(3, 2)
    buf = io.BytesIO()
    Image.fromarray(gradient).save(buf, format="PNG")
    return buf.getvalue()


# ---- OpenAI Images API through the official client ----------------------------------------------


def test_models_name_the_model_and_its_resolution(client):
    models = client.models.list().data
    assert len(models) == 1
    assert models[0].id == "tiny-sd15-lcm-128x128"
    assert models[0].owned_by == "pi-axera-sd"


def test_generations_b64_json_with_seed_clamps_and_reports_size(client):
    answer = client.images.generate(
        model="tiny-sd15-lcm-128x128",
        prompt="a lighthouse at dusk",
        n=5,  # more than the per-request cap: capped, not refused
        size="1024x1024",  # the model's own size is made, and said
        response_format="b64_json",
        user="someone",
        extra_body={"seed": 7},
    )
    assert answer.size == "128x128"
    assert len(answer.data) == MAX_IMAGES
    assert [item.model_extra["seed"] for item in answer.data] == [7, 8, 9]
    first = pixels(answer.data[0].b64_json)
    assert first.shape == (128, 128, 3)
    again = client.images.generate(prompt="a lighthouse at dusk", extra_body={"seed": 7})
    assert np.array_equal(pixels(again.data[0].b64_json), first)  # b64_json is the default here
    assert not np.array_equal(pixels(answer.data[1].b64_json), first)


def test_generations_url_is_served_for_a_bounded_time_without_credentials(client, server):
    answer = client.images.generate(prompt="a red barn", response_format="url", extra_body={"seed": 3})
    url = answer.data[0].url
    assert url.startswith(f"{server.url}/v1/images/files/") and url.endswith(".png")
    fetched = httpx.get(url, timeout=10)  # browsers fetch it with no Authorization header
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).size == (128, 128)
    deadline = time.monotonic() + LINK_TTL_S + 10
    while httpx.get(url, timeout=10).status_code == 200:
        assert time.monotonic() < deadline, "the link never expired"
        time.sleep(0.5)
    gone = httpx.get(url, timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_openai_model_families_choose_the_answer_form_when_none_is_asked(http, server):
    """As OpenAI's API does, and as LibreChat's tools read it without asking: dall-e-* a url,
    gpt-image-* always b64_json, our own ids b64_json."""

    def first(**body) -> dict:
        answer = http.post("/v1/images/generations", json={"prompt": "a red barn", "seed": 3, **body})
        assert answer.status_code == 200, answer.text
        return answer.json()["data"][0]

    dalle3 = first(model="dall-e-3")
    assert "b64_json" not in dalle3 and dalle3["url"].startswith(f"{server.url}/v1/images/files/")
    assert dalle3["url"].endswith(".png")
    assert "url" in first(model="dall-e-2") and "b64_json" in first(
        model="dall-e-2", response_format="b64_json"
    )
    for asked in ({}, {"response_format": "url"}):
        gpt = first(model="gpt-image-1", **asked)
        assert "url" not in gpt and pixels(gpt["b64_json"]).shape == (128, 128, 3)
    ours = first(model="tiny-sd15-lcm-128x128")
    assert "url" not in ours and "b64_json" in ours


def test_edits_multipart_file_and_json_base64_give_the_same_image(client, http):
    image = png_bytes()
    by_file = client.images.edit(
        image=("init.png", image, "image/png"), prompt="a pencil sketch", extra_body={"seed": 11}
    )
    assert by_file.size == "128x128"
    as_json = http.post(
        "/v1/images/edits",
        json={"prompt": "a pencil sketch", "seed": 11, "image": base64.b64encode(image).decode()},
    )
    assert as_json.status_code == 200, as_json.text
    data_uri = "data:image/png;base64," + base64.b64encode(image).decode()
    as_images = http.post(
        "/v1/images/edits",
        json={"prompt": "a pencil sketch", "seed": 11, "images": [{"image_url": data_uri}]},
    )
    first = pixels(by_file.data[0].b64_json)
    assert np.array_equal(pixels(as_json.json()["data"][0]["b64_json"]), first)
    assert np.array_equal(pixels(as_images.json()["data"][0]["b64_json"]), first)
    txt = client.images.generate(prompt="a pencil sketch", extra_body={"seed": 11})
    assert not np.array_equal(pixels(txt.data[0].b64_json), first)  # the image was used


def test_errors_come_in_openais_shape(client, server):
    with pytest.raises(openai.BadRequestError) as bad:
        client.images.generate(prompt="x", response_format="gif")
    assert bad.value.param == "response_format"
    assert bad.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as missing:
        client.images.generate(prompt="")
    assert missing.value.param == "prompt"
    with pytest.raises(openai.BadRequestError) as no_image:
        client.images.edit(image=("x.png", b"not an image", "image/png"), prompt="x")
    assert no_image.value.param == "image"
    with pytest.raises(openai.BadRequestError) as bad_seed:
        client.images.generate(prompt="x", extra_body={"seed": "abc"})
    assert bad_seed.value.param == "seed"
    wrong_key = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong_key.models.list()
    assert denied.value.code == "invalid_api_key"
    assert set(denied.value.response.json()["error"]) == {"message", "type", "param", "code"}


# ---- AXERA's sample-server dialect on /generate -------------------------------------------------


def test_axera_sample_txt2img_request_for_request(http):
    answer = http.post("/generate", json={"prompt": "a cat", "return_base64": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {"seed", "width", "height", "save_path", "image_base64"} <= set(body)
    assert (body["width"], body["height"]) == (128, 128)
    assert body["save_path"] is None  # nothing saved: SAVE_IMAGES is off and the image came back
    assert pixels(body["image_base64"]).shape == (128, 128, 3)
    seed_style = http.post("/generate", json={"prompt": "a cat", "seed": body["seed"]}).json()
    assert set(seed_style) == {"status", "base64", "text_time_ms", "total_time_ms", "seed"}
    assert np.array_equal(pixels(seed_style["base64"]), pixels(body["image_base64"]))


def test_axera_sample_img2img_and_save_path(http, server):
    init = base64.b64encode(png_bytes()).decode()
    body = http.post(
        "/generate", json={"prompt": "a sketch", "init_image_base64": init, "return_base64": False, "seed": 4}
    ).json()
    assert "image_base64" not in body
    saved = body["save_path"]
    assert saved and saved.startswith(str(server.output_dir)) and saved.endswith(".png")
    seed_style = http.post(
        "/generate",
        json={
            "mode": "img2img",
            "prompt": "a sketch",
            "init_image": init,
            "seed": 4,
            "denoising_strength": 0.5,
        },
    ).json()
    with open(saved, "rb") as fh:
        assert np.array_equal(np.asarray(Image.open(fh).convert("RGB")), pixels(seed_style["base64"]))


def test_axera_sample_errors_carry_error(http):
    for bad in ({"return_base64": True}, {"prompt": "x", "init_image_base64": "!!notbase64"}):
        answer = http.post("/generate", json=bad)
        assert answer.status_code == 400
        assert isinstance(answer.json()["error"], str) and answer.json()["error"]


def test_seed_request_gets_exactly_the_seeds_answer(http):
    body = http.post("/generate", json={"mode": "img2img", "prompt": "x", "init_image": SEED_PNG_1X1}).json()
    assert set(body) == {"status", "base64", "text_time_ms", "total_time_ms", "seed"}


# ---- randn_source ------------------------------------------------------------------------------


def test_randn_source_option_override_and_infotext(http):
    assert http.get("/sdapi/v1/options").json()["randn_source"] == "CPU"
    cpu = http.post("/sdapi/v1/txt2img", json={"prompt": "a boat", "seed": 5}).json()
    info = json.loads(cpu["info"])
    assert parse_infotext(info["infotexts"][0])["RNG"] == "CPU"
    override = {"prompt": "a boat", "seed": 5, "override_settings": {"randn_source": "PCG64"}}
    pcg = http.post("/sdapi/v1/txt2img", json=override).json()
    assert parse_infotext(json.loads(pcg["info"])["infotexts"][0])["RNG"] == "PCG64"
    assert not np.array_equal(pixels(cpu["images"][0]), pixels(pcg["images"][0]))

    bad = http.post("/sdapi/v1/txt2img", json={**override, "override_settings": {"randn_source": "NV"}})
    assert bad.status_code == 400 and "randn_source" in bad.json()["detail"]
    assert http.post("/sdapi/v1/options", json={"randn_source": "nv"}).status_code == 400
    try:
        assert http.post("/sdapi/v1/options", json={"randn_source": "pcg64"}).status_code == 200
        assert http.get("/sdapi/v1/options").json()["randn_source"] == "PCG64"
        again = http.post("/sdapi/v1/txt2img", json={"prompt": "a boat", "seed": 5}).json()
        assert np.array_equal(pixels(again["images"][0]), pixels(pcg["images"][0]))
    finally:
        http.post("/sdapi/v1/options", json={"randn_source": "CPU"})


def test_a1111_batch_image_i_is_seed_s_plus_i(http):
    answer = http.post("/sdapi/v1/txt2img", json={"prompt": "a fox", "seed": 100, "batch_size": 2}).json()
    assert json.loads(answer["info"])["all_seeds"] == [100, 101]
    single = http.post("/sdapi/v1/txt2img", json={"prompt": "a fox", "seed": 101}).json()
    assert np.array_equal(pixels(answer["images"][1]), pixels(single["images"][0]))


# ---- the README's commands, as a user types them -----------------------------------------------

README_OPENAI = """curl -s http://localhost:5000/v1/images/generations -H "Content-Type: application/json" \\
  -d '{"prompt": "a red fox in the snow", "size": "1024x1024", "seed": 42}' | python3 -c \\
  'import json,sys; r=json.load(sys.stdin); print(r["size"], r["data"][0]["seed"])'"""
README_AXERA = """curl -s http://localhost:5000/generate -H "Content-Type: application/json" \\
  -d '{"prompt": "a red fox in the snow", "return_base64": true, "seed": 42}' | python3 -c \\
  'import json,sys; r=json.load(sys.stdin); print(r["width"], r["height"], r["seed"])'"""


@pytest.fixture(scope="module")
def open_server(tiny_model_dir, tmp_path_factory):
    """Without credentials, as the README's commands are typed."""
    env = {
        "MODELS_DIR": str(tiny_model_dir),
        "PI_AXERA_SD_CLIP_DIR": str(tmp_path_factory.mktemp("no-clip")),
        "PI_AXERA_SD_API_AUTH": "",
        "PI_AXERA_SD_API_TOKEN": "",
    }
    proc = ServeProcess(env).wait_ready()
    yield proc
    proc.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize(
    ("command", "expected"),
    [(README_OPENAI, "128x128 42"), (README_AXERA, "128 128 42")],
    ids=["openai", "axera"],
)
def test_readme_commands(open_server, command, expected):
    root = Path(__file__).resolve().parents[2]
    pages = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    assert command in pages  # shown in the README or the docs, exactly as tested here
    script = command.replace("localhost:5000", f"localhost:{open_server.port}")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_openapi_documents_the_openai_routes(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/images/generations", "/v1/images/edits"} <= set(paths)
    edit_body = paths["/v1/images/edits"]["post"]["requestBody"]["content"]
    assert set(edit_body) == {"multipart/form-data", "application/json"}


# ---- the prompt language: every dialect reads prompts by the same rules ------------------------


def test_lora_tags_are_removed_and_every_dialect_says_so(http, client):
    tagged, plain = "a red fox <lora:foxes:0.8> in the snow", "a red fox in the snow"
    a1111 = http.post("/sdapi/v1/txt2img", json={"prompt": tagged, "seed": 3}).json()
    reference = http.post("/sdapi/v1/txt2img", json={"prompt": plain, "seed": 3}).json()
    assert np.array_equal(pixels(a1111["images"][0]), pixels(reference["images"][0]))
    info = json.loads(a1111["info"])
    (warning,) = info["warnings"]
    assert "<lora:foxes:0.8> not applied" in warning
    assert parse_infotext(info["infotexts"][0])["Warnings"] == warning
    assert json.loads(reference["info"])["warnings"] == []
    assert "Warnings" not in parse_infotext(json.loads(reference["info"])["infotexts"][0])

    generate = http.post("/generate", json={"prompt": tagged, "seed": 3}).json()
    assert generate["warnings"] == [warning]
    assert np.array_equal(pixels(generate["base64"]), pixels(reference["images"][0]))
    assert "warnings" not in http.post("/generate", json={"prompt": plain, "seed": 3}).json()
    axera = http.post("/generate", json={"prompt": tagged, "seed": 3, "return_base64": True}).json()
    assert axera["warnings"] == [warning]
    openai_answer = http.post("/v1/images/generations", json={"prompt": tagged, "seed": 3}).json()
    assert openai_answer["warnings"] == [warning]
    # the official client reads the answer without minding the extra field
    official = client.images.generate(prompt=tagged, extra_body={"seed": 3}).data[0].b64_json
    assert np.array_equal(pixels(official), pixels(reference["images"][0]))


def test_guidance_is_off_by_default_and_the_answer_says_what_was_ignored(http):
    body = {"prompt": "a red fox", "negative_prompt": "blurry", "cfg_scale": 7, "seed": 4}
    answer = http.post("/sdapi/v1/txt2img", json=body).json()
    info = json.loads(answer["info"])
    assert info["cfg_scale"] == 1.0
    (warning,) = info["warnings"]
    assert "cfg_scale 7 and the negative prompt ignored" in warning
    infotext = parse_infotext(info["infotexts"][0])
    assert infotext["CFG scale"] == 1 and infotext["Negative prompt"] == ""
    plain = http.post("/sdapi/v1/txt2img", json={"prompt": "a red fox", "seed": 4}).json()
    assert np.array_equal(pixels(plain["images"][0]), pixels(answer["images"][0]))
    generate = http.post("/generate", json={"prompt": "a red fox", "negative_prompt": "blurry"}).json()
    assert "negative prompt ignored" in generate["warnings"][0]


def test_guidance_turned_on_per_request_and_for_the_service(http):
    body = {"prompt": "a red fox", "negative_prompt": "blurry", "cfg_scale": 1.5, "seed": 4}
    off = http.post("/sdapi/v1/txt2img", json=body).json()
    on = http.post("/sdapi/v1/txt2img", json={**body, "override_settings": {"cfg": True}}).json()
    info = json.loads(on["info"])
    assert info["cfg_scale"] == 1.5 and info["warnings"] == []
    infotext = parse_infotext(info["infotexts"][0])
    assert infotext["CFG scale"] == 1.5 and infotext["Negative prompt"] == "blurry"
    assert not np.array_equal(pixels(on["images"][0]), pixels(off["images"][0]))
    clamped = http.post(
        "/sdapi/v1/txt2img", json={**body, "cfg_scale": 7, "override_settings": {"cfg": "true"}}
    ).json()
    clamped_info = json.loads(clamped["info"])
    assert clamped_info["cfg_scale"] == 2.0
    assert "cfg_scale 7 lowered to 2" in clamped_info["warnings"][0]
    bad = http.post("/sdapi/v1/txt2img", json={**body, "override_settings": {"cfg": "maybe"}})
    assert bad.status_code == 400 and "override_settings.cfg" in bad.json()["detail"]

    assert http.get("/sdapi/v1/options").json()["cfg"] is False
    try:
        assert http.post("/sdapi/v1/options", json={"cfg": True}).status_code == 200
        service_wide = http.post("/sdapi/v1/txt2img", json=body).json()
        assert np.array_equal(pixels(service_wide["images"][0]), pixels(on["images"][0]))
        generate = http.post("/generate", json={**body, "mode": "txt2img"}).json()
        assert "warnings" not in generate
    finally:
        http.post("/sdapi/v1/options", json={"cfg": False})
    assert http.post("/sdapi/v1/options", json={"cfg": "maybe"}).status_code == 400


def test_prompt_syntax_can_be_turned_off_per_request(http):
    body = {"prompt": "a (red:1.5) fox <lora:x:1>", "seed": 6}
    parsed = http.post("/sdapi/v1/txt2img", json=body).json()
    literal = http.post(
        "/sdapi/v1/txt2img", json={**body, "override_settings": {"prompt_syntax": False}}
    ).json()
    assert json.loads(literal["info"])["warnings"] == []
    assert parse_infotext(json.loads(literal["info"])["infotexts"][0])["Prompt syntax"] == "off"
    assert not np.array_equal(pixels(literal["images"][0]), pixels(parsed["images"][0]))


def test_prompt_tokens_counts_chunks_with_the_models_tokenizer(http):
    counted = http.post("/prompt/tokens", json={"prompt": "a red fox, " + "cat " * 100}).json()
    assert [c["tokens"] for c in counted["chunks"]] == [75, 29]
    assert counted["token_count"] == 104 and counted["dropped_tokens"] == 0
    assert counted["model_chunks"] == 8 and counted["warnings"] == []
    tagged = http.post("/prompt/tokens", json={"prompt": "a (fox:1.2) <lora:x:1>"}).json()
    assert tagged["chunks"] == [{"tokens": 2, "of": 75}] and tagged["extra_networks"] == ["<lora:x:1>"]
    literal = http.post("/prompt/tokens", json={"prompt": "a (fox:1.2)", "prompt_syntax": False}).json()
    assert literal["token_count"] > 2
    assert http.post("/prompt/tokens", json={}).status_code == 400
    assert http.post("/prompt/tokens", json={"prompt": 5}).status_code == 400


# ---- masks: inpainting through A1111, OpenAI and /generate ---------------------------------------


def noisy_png(size: tuple[int, int] = (128, 128), seed: int = 0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    pixels_ = np.clip(ramp + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels_).save(buf, format="PNG")
    return buf.getvalue(), pixels_


def box_mask_png(size: tuple[int, int], box: tuple[int, int, int, int], *, alpha: bool = False) -> bytes:
    w, h = size
    x1, y1, x2, y2 = box
    if alpha:  # OpenAI: transparent where the image may change
        rgba = np.full((h, w, 4), 255, np.uint8)
        rgba[y1:y2, x1:x2, 3] = 0
        image = Image.fromarray(rgba, "RGBA")
    else:  # A1111: white where the image may change
        grey = np.zeros((h, w), np.uint8)
        grey[y1:y2, x1:x2] = 255
        image = Image.fromarray(grey)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


BOX = (40, 32, 88, 96)


def outside(box: tuple[int, int, int, int], shape: tuple[int, int], margin: int = 0) -> np.ndarray:
    x1, y1, x2, y2 = box
    keep = np.ones(shape, bool)
    keep[max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin] = False
    return keep


@pytest.mark.parametrize(
    ("fields", "margin"),
    [
        ({"mask_blur": 0, "inpaint_full_res": False, "inpainting_fill": 1}, 0),
        ({"mask_blur": 4, "inpaint_full_res": False}, 12),  # blurred edge; fill; the A1111 defaults
        ({}, 12),  # A1111's defaults: blur 4, "only masked", fill
        ({"inpaint_full_res": True, "inpaint_full_res_padding": 16, "inpainting_fill": 2}, 12),
    ],
)
def test_a1111_mask_changes_only_the_masked_area(http, fields, margin):
    raw, original = noisy_png()
    body = {
        "prompt": "a red fox",
        "seed": 9,
        "init_images": [b64(raw)],
        "mask": b64(box_mask_png((128, 128), BOX)),
        "denoising_strength": 0.75,
        **fields,
    }
    answer = http.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    result = pixels(answer.json()["images"][0])
    keep = outside(BOX, (128, 128), margin)
    assert np.array_equal(result[keep], original[keep])  # the original's pixels, unchanged
    assert (
        np.abs(result[~outside(BOX, (128, 128))].astype(int) - original[~outside(BOX, (128, 128))]).max() > 20
    )


def test_an_all_black_mask_gives_the_image_back(http):
    raw, original = noisy_png(seed=2)
    body = {
        "prompt": "x",
        "seed": 1,
        "init_images": [b64(raw)],
        "mask": b64(box_mask_png((128, 128), (0, 0, 0, 0))),
    }
    answer = http.post("/sdapi/v1/img2img", json=body).json()
    assert np.array_equal(pixels(answer["images"][0]), original)
    inverted = http.post("/sdapi/v1/img2img", json={**body, "inpainting_mask_invert": 1}).json()
    assert not np.array_equal(pixels(inverted["images"][0]), original)  # everything may change


def test_only_masked_pastes_back_into_an_image_of_another_size(http):
    raw, original = noisy_png((200, 160), seed=3)
    box = (120, 40, 170, 90)
    body = {
        "prompt": "x",
        "seed": 2,
        "init_images": [b64(raw)],
        "mask": b64(box_mask_png((200, 160), box)),
        "mask_blur": 0,
        "inpaint_full_res": True,
        "inpaint_full_res_padding": 8,
    }
    result = pixels(http.post("/sdapi/v1/img2img", json=body).json()["images"][0])
    assert result.shape == (160, 200, 3)  # the original's size: the region was pasted back
    keep = outside(box, (160, 200))
    assert np.array_equal(result[keep], original[keep])
    assert not np.array_equal(result[~keep], original[~keep])


def test_generate_takes_a_mask_image(http):
    raw, original = noisy_png(seed=4)
    body = {
        "mode": "img2img",
        "prompt": "x",
        "seed": 3,
        "init_image": b64(raw),
        "mask_image": b64(box_mask_png((128, 128), BOX)),
        "mask_blur": 0,
    }
    answer = http.post("/generate", json=body).json()
    keep = outside(BOX, (128, 128))
    assert np.array_equal(pixels(answer["base64"])[keep], original[keep])
    unmasked = http.post("/generate", json={k: v for k, v in body.items() if k != "mask_image"}).json()
    assert not np.array_equal(pixels(unmasked["base64"])[keep], original[keep])


def test_openai_edit_with_a_mask_keeps_the_opaque_area(client, http):
    raw, original = noisy_png(seed=5)
    mask = box_mask_png((128, 128), BOX, alpha=True)
    answer = client.images.edit(
        image=("in.png", raw, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a red fox",
        extra_body={"seed": 4},
    )
    result = pixels(answer.data[0].b64_json)
    keep = outside(BOX, (128, 128))
    assert np.array_equal(result[keep], original[keep])
    assert not np.array_equal(result[~keep], original[~keep])
    as_json = http.post(
        "/v1/images/edits",
        json={
            "prompt": "x",
            "image": b64(raw),
            "mask": {"image_url": "data:image/png;base64," + b64(mask)},
            "seed": 4,
        },
    )
    assert as_json.status_code == 200
    assert np.array_equal(pixels(as_json.json()["data"][0]["b64_json"])[keep], original[keep])


@pytest.mark.parametrize(
    ("mask", "says"),
    [
        (box_mask_png((64, 64), (0, 0, 8, 8), alpha=True), "must be the image's size 128x128, not 64x64"),
        (box_mask_png((128, 128), BOX), "must have an alpha channel"),
    ],
)
def test_openai_edit_refuses_a_mask_it_cannot_read(http, mask, says):
    raw, _ = noisy_png(seed=6)
    answer = http.post(
        "/v1/images/edits",
        files={"image": ("in.png", raw, "image/png"), "mask": ("m.png", mask, "image/png")},
        data={"prompt": "x"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert says in error["message"] and error["param"] == "mask"


def test_a1111_latent_mask_decides_what_the_sampler_keeps(http):
    raw, original = noisy_png(seed=7)
    body = {
        "prompt": "x",
        "seed": 5,
        "init_images": [b64(raw)],
        "mask": b64(box_mask_png((128, 128), BOX)),
        "mask_blur": 0,
        "inpaint_full_res": False,
        "inpainting_fill": 1,
    }
    changed = pixels(http.post("/sdapi/v1/img2img", json=body).json()["images"][0])
    black = b64(box_mask_png((128, 128), (0, 0, 0, 0)))
    kept = pixels(http.post("/sdapi/v1/img2img", json={**body, "latent_mask": black}).json()["images"][0])
    keep = outside(BOX, (128, 128))
    assert np.array_equal(changed[keep], original[keep]) and np.array_equal(kept[keep], original[keep])
    # the sampler kept the whole init latent: inside the box only the VAE's round trip is left
    assert np.abs(kept[~keep].astype(int) - changed[~keep]).max() > 20


def test_openai_edit_without_a_mask_edits_the_images_transparent_area(http):
    """DALL-E 2's rule: with no mask, the image's own fully transparent pixels mark the area."""
    _, original = noisy_png(seed=8)
    rgba = np.dstack([original, np.full((128, 128), 255, np.uint8)])
    x1, y1, x2, y2 = BOX
    rgba[y1:y2, x1:x2, 3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    answer = http.post(
        "/v1/images/edits", files={"image": ("in.png", buf.getvalue(), "image/png")}, data={"prompt": "x"}
    )
    assert answer.status_code == 200, answer.text
    result = pixels(answer.json()["data"][0]["b64_json"])
    keep = outside(BOX, (128, 128))
    assert np.array_equal(result[keep], original[keep])
    assert not np.array_equal(result[~keep], original[~keep])
