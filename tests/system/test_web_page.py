"""The page at ``/`` in a real browser: Debian's Chromium, driven headless by Playwright, against the
real ``pi-axera-sd serve`` with the tiny SD model and a tiny CLIP.

Chromium comes from the distribution (``make chromium`` installs it; ``make test`` runs that when it
is missing): Playwright's own browser download is not used. Screenshots of each state are written
to ``build/screenshots/`` (or ``$PI_AXERA_SD_SCREENSHOTS``), outside git.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from support.clip import random_image
from support.server import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("PI_AXERA_SD_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("PI_AXERA_SD_SCREENSHOTS", ROOT / "build" / "screenshots"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
GENERATION_MS = 90_000  # a bound, not a goal: the shared test machine can be slow
TOKEN = "s3cret-token"
USER, PASSWORD = "ada", "lovelace"


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _serve(tiny_model_dir, clip_exports, tags_file, cache: Path, **env: str) -> ServeProcess:
    base = {
        "MODELS_DIR": str(tiny_model_dir),
        "CLIP_DIR": str(clip_exports["projected"]),
        "INTERROGATE_TAGS_FILE": str(tags_file),
        "PI_AXERA_SD_EMBEDDING_CACHE_DIR": str(cache),
        "PI_AXERA_SD_MAX_IMAGES_PER_REQUEST": "64",
        "PI_AXERA_SD_API_AUTH": "",
        "PI_AXERA_SD_API_TOKEN": "",
    }
    proc = ServeProcess({**base, **env})
    proc.wait_ready(headers={"Authorization": f"Bearer {TOKEN}"})
    return proc


@pytest.fixture(scope="module")
def server(tiny_model_dir, clip_exports, tags_file, tmp_path_factory) -> Iterator[str]:
    proc = _serve(tiny_model_dir, clip_exports, tags_file, tmp_path_factory.mktemp("clip-cache"))
    yield proc.url
    proc.stop()


@pytest.fixture(scope="module")
def auth_server(tiny_model_dir, clip_exports, tags_file, tmp_path_factory) -> Iterator[str]:
    proc = _serve(
        tiny_model_dir,
        clip_exports,
        tags_file,
        tmp_path_factory.mktemp("clip-cache-auth"),
        PI_AXERA_SD_API_TOKEN=TOKEN,
        PI_AXERA_SD_API_AUTH=f"{USER}:{PASSWORD}",
    )
    yield proc.url
    proc.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[BrowserContext]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (Debian's chromium package)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # an empty user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: BrowserContext, server: str) -> Iterator[Page]:
    page = browser.new_page()
    page.set_viewport_size(DESKTOP)
    page.goto(server + "/")
    # the profile is shared by the module's tests: each starts with no kept images. The database is
    # deleted outright (it goes once this page's connection closes, on the reload), so no write of an
    # earlier test can still be in flight; the Clear button has its own test.
    page.evaluate(
        """() => new Promise((done) => {
            const deleting = indexedDB.deleteDatabase("pi-axera-sd");
            deleting.onsuccess = deleting.onerror = deleting.onblocked = () => done();
        })"""
    )
    page.reload()
    expect(page.locator("#gallery > li")).to_have_count(0)
    expect(page.locator("#model-status")).to_contain_text("Model: tiny-sd15-lcm")
    yield page
    page.close()


def _make(page: Page, prompt: str, count: int = 1) -> None:
    page.get_by_label("Prompt").first.fill(prompt)
    page.locator("#create-count").fill(str(count))
    page.get_by_role("button", name="Make image").click()


def _seed_of(card) -> int:
    found = re.search(r"Seed (\d+)", card.locator(".meta").inner_text())
    assert found, card.inner_text()
    return int(found[1])


def _upload(page: Page, field: str, path: Path) -> None:
    page.locator(field).set_input_files(str(path))


def test_make_an_image_then_reuse_its_seed_for_the_same_image(page: Page):
    _make(page, "a red fox in the snow")
    cards = page.locator("#gallery > li")
    expect(cards).to_have_count(1, timeout=GENERATION_MS)
    first = cards.first
    seed = _seed_of(first)
    first_png = first.locator("img").get_attribute("src")
    assert first_png and first_png.startswith("data:image/png;base64,")
    assert f"Seed: {seed}" in (first.locator(".infotext").text_content() or "")
    assert first.get_by_role("link", name=f"Download the image with seed {seed}").get_attribute(
        "download"
    ) == (f"pi-axera-sd-{seed}.png")
    expect(page.locator("#progress-text")).to_contain_text("Done: 1 image")

    page.get_by_role("button", name=f"Reuse last seed ({seed})").first.click()
    expect(page.locator("#create-seed")).to_have_value(str(seed))
    page.get_by_role("button", name="Make image").click()
    expect(cards).to_have_count(2, timeout=GENERATION_MS)
    assert _seed_of(cards.first) == seed
    assert cards.first.locator("img").get_attribute("src") == first_png  # the very same PNG
    first.locator("summary").click()
    shot(page, "desktop-create")

    page.set_viewport_size(PHONE)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    shot(page, "phone-create")


def test_the_gallery_survives_a_reload_keeps_the_last_n_and_clears(page: Page):
    """Kept in this browser's IndexedDB: a reload shows the same images, newest first; the keep
    setting (default 50) drops the oldest; Clear empties it, also after the next reload."""
    expect(page.get_by_label("Keep the last")).to_have_value("50")
    _make(page, "kept one", count=2)
    cards = page.locator("#gallery > li")
    expect(cards).to_have_count(2, timeout=GENERATION_MS)
    before = [cards.nth(i).locator("img").get_attribute("src") for i in range(2)]
    page.reload()
    expect(cards).to_have_count(2)
    assert [cards.nth(i).locator("img").get_attribute("src") for i in range(2)] == before
    assert "kept one" in (cards.first.locator("img").get_attribute("alt") or "")

    page.get_by_label("Keep the last").fill("1")
    page.get_by_label("Keep the last").dispatch_event("change")
    page.reload()
    expect(cards).to_have_count(1)
    assert cards.first.locator("img").get_attribute("src") == before[0]  # the newest stays
    expect(page.get_by_label("Keep the last")).to_have_value("1")
    shot(page, "desktop-kept-gallery")

    page.get_by_role("button", name="Clear").click()
    expect(cards).to_have_count(0)
    page.reload()
    expect(cards).to_have_count(0)
    expect(page.locator("#gallery-empty")).to_be_visible()
    page.get_by_label("Keep the last").fill("50")
    page.get_by_label("Keep the last").dispatch_event("change")


def test_img2img_from_an_uploaded_file_and_send_a_result_back(page: Page, tmp_path: Path):
    start = tmp_path / "start.png"
    random_image(200, 150, seed=2).save(start)
    page.get_by_role("tab", name="Edit an image").click()
    _upload(page, "#edit-file", start)
    expect(page.locator("#edit-image")).to_be_visible()
    page.locator("#edit-prompt").fill("a pencil sketch")
    page.locator("#edit-strength").evaluate(
        "(el) => { el.value = '0.5'; el.dispatchEvent(new Event('input')); }"
    )
    expect(page.locator("#edit-strength-value")).to_have_text("0.50")
    page.get_by_label("Resize mode").select_option("2")
    page.locator("#edit-vae").select_option("taesd")  # the test model ships a tiny VAE
    page.get_by_role("button", name="Edit image").click()
    cards = page.locator("#gallery > li")
    expect(cards).to_have_count(1, timeout=GENERATION_MS)
    infotext = cards.first.locator(".infotext").text_content() or ""
    assert "Denoising strength: 0.5" in infotext, infotext
    assert (cards.first.locator("img").get_attribute("alt") or "").startswith("Edited from")
    shot(page, "desktop-edit")

    # The result goes back in as the next start image.
    page.get_by_role("tab", name="Create").click()
    cards.first.get_by_role("button", name="Send to img2img").click()
    expect(page.locator("#panel-edit")).to_be_visible()
    assert page.locator("#edit-image").get_attribute("src") == cards.first.locator("img").get_attribute("src")


def _png_of(data_url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix), data_url[:40]
    return Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix) :])))


def _open_in_edit(page: Page, path: Path) -> None:
    page.get_by_role("tab", name="Edit an image").click()
    _upload(page, "#edit-file", path)
    expect(page.locator("#mask-canvas")).to_be_visible()


def _stroke(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag over the mask canvas, between fractions of its width and height."""
    box = page.locator("#mask-canvas").bounding_box()
    assert box, "the mask canvas is not shown"

    def at(point: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    page.mouse.move(*at(start))
    page.mouse.down()
    page.mouse.move(*at(end), steps=8)
    page.mouse.up()


def _brush(page: Page, size: int) -> None:
    page.locator("#mask-size").evaluate(
        "(el, size) => { el.value = String(size); el.dispatchEvent(new Event('input')); }", size
    )
    expect(page.locator("#mask-size-value")).to_have_text(str(size))


def _mask_alpha(page: Page) -> np.ndarray:
    """The mask canvas's alpha channel, one value per start-image pixel (0: not painted)."""
    found = page.evaluate(
        """() => {
            const canvas = document.getElementById('mask-canvas');
            const rgba = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            const alpha = Array.from(rgba.filter((_, i) => i % 4 === 3));
            return { width: canvas.width, height: canvas.height, alpha };
        }"""
    )
    return np.array(found["alpha"], dtype=np.uint8).reshape(found["height"], found["width"])


def _record_img2img(page: Page) -> list[dict]:
    """The bodies the page posts to /sdapi/v1/img2img (each passed on to the server)."""
    bodies: list[dict] = []

    def record(route):
        bodies.append(route.request.post_data_json)
        route.continue_()

    page.route("**/sdapi/v1/img2img", record)
    return bodies


def test_inpainting_mask_is_painted_and_sent(page: Page, tmp_path: Path):
    """A stroke in the middle of the start image goes out as A1111's mask (white = change) at the
    image's own size; the answer keeps the pixels far from it and is shown beside the original."""
    start = tmp_path / "start.png"
    random_image(128, 128, seed=7).save(start)
    original = np.asarray(Image.open(start).convert("RGB"))
    bodies = _record_img2img(page)
    _open_in_edit(page, start)
    canvas = page.locator("#mask-canvas")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("128", "128")
    expect(page.get_by_label("Edge blur")).to_have_value("4")
    expect(page.get_by_label("Brush size")).to_have_value("24")
    _stroke(page, (0.42, 0.5), (0.58, 0.5))  # within the centre 20% of the image
    page.locator("#edit-prompt").fill("a red apple")
    page.locator("#edit-vae").select_option("taesd")
    shot(page, "desktop-inpaint-mask")
    page.get_by_role("button", name="Edit image").click()
    deadline = time.monotonic() + 10
    while not bodies:
        assert time.monotonic() < deadline, "the page never sent the edit"
        page.wait_for_timeout(100)
    body = bodies[0]
    assert body["init_images"] == [page.locator("#edit-image").get_attribute("src")]
    assert body["mask_blur"] == 4 and body["inpainting_mask_invert"] == 0
    mask_png = _png_of(body["mask"])
    assert mask_png.size == (128, 128)
    mask = np.asarray(mask_png.convert("L"))
    assert set(np.unique(mask)) == {0, 255}, "the mask is black and white"
    changed = mask == 255  # the painted stroke, as sent
    ys, xs = np.nonzero(changed)
    assert 40 <= xs.min() <= xs.max() <= 88 and 40 <= ys.min() <= ys.max() <= 88, (xs, ys)
    assert changed[64, 64] and changed[64, 56] and changed[64, 72]

    expect(page.locator("#edit-compare")).to_be_visible(timeout=GENERATION_MS)
    expect(page.locator("#gallery > li")).to_have_count(1)
    expect(page.locator("#edit-result-caption")).to_have_text("After (inpainted)")
    shot(page, "desktop-inpaint-result")
    assert len(bodies) == 1
    assert page.locator("#edit-original").get_attribute("src") == body["init_images"][0]
    result = np.asarray(_png_of(page.locator("#edit-result").get_attribute("src") or "").convert("RGB"))
    assert result.shape == original.shape
    assert (result[changed] != original[changed]).any(), "nothing changed inside the mask"
    page.set_viewport_size(PHONE)  # nothing scrolls sideways; the mask follows the preview
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    page.wait_for_function(
        """() => {
            const a = document.getElementById('mask-canvas').getBoundingClientRect();
            const b = document.getElementById('edit-image').getBoundingClientRect();
            return a.width > 0 && ['x', 'y', 'width', 'height'].every((k) => Math.abs(a[k] - b[k]) < 0.5);
        }""",
        timeout=5000,
    )
    shot(page, "phone-inpaint-result")

    border = np.ones(changed.shape, dtype=bool)
    border[16:-16, 16:-16] = False
    differ = (result != original).any(axis=2) & border
    assert not differ.any(), f"{int(differ.sum())} of {int(border.sum())} border pixels changed"


def test_the_mask_eraser_and_erase_all(page: Page, tmp_path: Path):
    """Paint shows as a translucent overlay; the eraser removes paint where it goes; Erase all
    empties the mask, and a new start image starts with none. With nothing painted the page sends
    plain img2img, without a mask."""
    start = tmp_path / "start.png"
    random_image(128, 128, seed=8).save(start)
    bodies = _record_img2img(page)
    _open_in_edit(page, start)
    assert float(page.locator("#mask-canvas").evaluate("(el) => getComputedStyle(el).opacity")) < 1
    assert _mask_alpha(page).max() == 0
    _stroke(page, (0.2, 0.5), (0.8, 0.5))
    alpha = _mask_alpha(page)
    assert alpha.shape == (128, 128)
    assert alpha[64, 38] == 255 and alpha[64, 90] == 255 and alpha[20, 64] == 0

    page.get_by_label("Eraser").check()
    _brush(page, 40)
    _stroke(page, (0.1, 0.5), (0.3, 0.5))
    alpha = _mask_alpha(page)
    assert alpha[:, :50].max() == 0, "the eraser left paint behind"
    assert alpha[64, 90] == 255, "the eraser removed paint where it did not go"

    page.get_by_label("Eraser").uncheck()
    _stroke(page, (0.5, 0.2), (0.5, 0.3))
    assert _mask_alpha(page)[32, 64] == 255
    page.get_by_role("button", name="Erase all").click()
    assert _mask_alpha(page).max() == 0

    _stroke(page, (0.4, 0.4), (0.6, 0.6))
    assert _mask_alpha(page).max() == 255
    # A new start image (another size here) starts with no mask, sized to it.
    other = tmp_path / "other.png"
    random_image(96, 64, seed=9).save(other)
    _upload(page, "#edit-file", other)
    expect(page.locator("#mask-canvas")).to_have_attribute("width", "96")
    assert _mask_alpha(page).shape == (64, 96) and _mask_alpha(page).max() == 0

    # Invert and blur go out with the mask as A1111's fields.
    _stroke(page, (0.4, 0.4), (0.6, 0.6))
    page.get_by_label("Change everything except the painted area").check()
    page.get_by_label("Edge blur").fill("8")
    page.locator("#edit-prompt").fill("a quiet lake")
    page.locator("#edit-vae").select_option("taesd")
    page.get_by_role("button", name="Edit image").click()
    expect(page.locator("#edit-result-caption")).to_have_text("After (inpainted)", timeout=GENERATION_MS)
    assert len(bodies) == 1
    assert (bodies[0]["mask_blur"], bodies[0]["inpainting_mask_invert"]) == (8, 1)
    assert _png_of(bodies[0]["mask"]).size == (96, 64)

    page.get_by_role("button", name="Erase all").click()
    page.get_by_role("button", name="Edit image").click()
    expect(page.locator("#edit-result-caption")).to_have_text("After", timeout=GENERATION_MS)
    expect(page.locator("#edit-compare")).to_be_visible()
    assert len(bodies) == 2
    assert not {"mask", "mask_blur", "inpainting_mask_invert"} & set(bodies[1]), sorted(bodies[1])


def test_tag_an_image_flat_then_by_category(page: Page, tmp_path: Path):
    image = tmp_path / "portrait.png"
    random_image(160, 160, seed=3).save(image)
    page.get_by_role("tab", name="Tag an image").click()
    _upload(page, "#tag-file", image)
    page.get_by_label("Lowest score").fill("-1")
    page.get_by_label("Most tags").fill("5")
    # The taxonomy warms up on the lane after start; until then the page shows the service's words.
    deadline = time.monotonic() + 120
    while True:
        page.get_by_role("button", name="Tag image").click()
        page.wait_for_function(
            "document.querySelector('#tag-result table') || !document.querySelector('#error').hidden",
            timeout=GENERATION_MS,
        )
        if page.locator("#tag-result table").count():
            break
        assert "warming up" in page.locator("#error").inner_text()
        assert time.monotonic() < deadline, "the taxonomy never finished warming up"
        page.wait_for_timeout(500)
    expect(page.locator("#tag-result tbody tr")).to_have_count(5)
    assert page.locator("#tag-result caption").inner_text() == "Tags, best first"
    shot(page, "desktop-tag-flat")

    page.get_by_label("One answer per category").check()
    expect(page.locator(".cat-name")).to_have_count(2)  # the original service's demographics example
    assert page.locator(".cat-name").nth(0).input_value() == "gender"
    page.get_by_role("button", name="Add a category").click()
    page.get_by_label("Category 3 name").fill("setting")
    page.get_by_label("Category 3 choices").fill("indoors, outdoors")
    page.get_by_role("button", name="Tag image").click()
    rows = page.locator("#tag-result tbody tr")
    expect(rows).to_have_count(3, timeout=GENERATION_MS)
    categories = [rows.nth(i).locator("td").first.inner_text() for i in range(3)]
    assert categories == ["gender", "hair_color", "setting"]
    assert rows.nth(2).locator("td").nth(1).inner_text() in ("indoors", "outdoors")
    shot(page, "desktop-tag")


def test_interrupt_a_long_batch_keeps_the_images_made(page: Page, browser: BrowserContext, server: str):
    _make(page, "a lighthouse at dusk", count=64)
    expect(page.locator("#interrupt")).to_be_enabled()
    # at least one image is finished (polling may see any later one first)
    expect(page.locator("#progress-text")).to_contain_text(
        re.compile(r"image ([2-9]|[1-5]\d) of 64"), timeout=GENERATION_MS
    )
    expect(page.locator("#preview")).to_be_visible(timeout=GENERATION_MS)
    assert page.locator("#preview").get_attribute("src", timeout=1000).startswith("data:image/png;base64,")
    shot(page, "desktop-progress")

    # A second visitor queues behind the batch: the page says so, and offers no Interrupt (it
    # would stop the batch, not their own job).
    other = browser.new_page()
    other.set_viewport_size(PHONE)
    other.goto(server + "/")
    _make(other, "a second visitor's boat")
    expect(other.locator("#progress-text")).to_have_text(
        "Waiting: 1 job ahead of yours in the queue.", timeout=GENERATION_MS
    )
    expect(other.locator("#interrupt")).to_be_disabled()
    shot(other, "phone-queued")

    page.get_by_role("button", name="Interrupt").click()
    expect(page.locator("#progress-text")).to_contain_text("Interrupted:", timeout=GENERATION_MS)
    expect(other.locator("#gallery > li")).to_have_count(1, timeout=GENERATION_MS)
    other.close()
    made = page.locator("#gallery > li").count()
    assert 1 <= made < 64
    expect(page.locator("#progress-text")).to_have_text(f"Interrupted: {made} of 64 images made.")
    expect(page.locator("#interrupt")).to_be_disabled()


def test_a_broken_image_shows_the_service_s_own_words(page: Page, server: str, tmp_path: Path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 10)
    page.get_by_role("tab", name="Edit an image").click()
    _upload(page, "#edit-file", broken)
    page.locator("#edit-prompt").fill("anything")
    expect(page.locator("#edit-image-note")).to_have_text(
        "No preview of broken.png: the browser cannot show it."
    )
    page.get_by_role("button", name="Edit image").click()
    error = page.get_by_role("alert").filter(has_text=re.compile(".+"))
    expect(error).to_be_visible(timeout=GENERATION_MS)
    # The same bytes sent straight to the API: the page shows exactly the service's message.
    data_url = "data:image/png;base64," + base64.b64encode(broken.read_bytes()).decode()
    answer = httpx.post(
        f"{server}/sdapi/v1/img2img", json={"prompt": "anything", "init_images": [data_url]}, timeout=60
    )
    assert answer.status_code == 400
    expect(error).to_have_text(answer.json()["detail"])
    assert page.locator("#gallery > li").count() == 0
    expect(page.locator("#progress-text")).to_have_text("Failed; see the message below the form.")
    shot(page, "desktop-error")


def test_every_control_has_a_label_and_tabs_follow_the_keyboard(page: Page):
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map((el) => el.id || el.name)"""
    )
    assert unlabeled == []
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to the form"
    page.get_by_role("tab", name="Create").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Edit an image")).to_be_focused()
    expect(page.locator("#panel-edit")).to_be_visible()
    expect(page.locator("#panel-create")).to_be_hidden()


def _tokens(server: str, prompt: str, headers: dict[str, str] | None = None) -> dict:
    """What ``POST /prompt/tokens`` answers for ``prompt``: the counters must show the same."""
    answer = httpx.post(f"{server}/prompt/tokens", json={"prompt": prompt}, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _counter_text(counts: dict) -> str:
    return " · ".join(f"{chunk['tokens']}/{chunk['of']}" for chunk in counts["chunks"])


def test_the_prompt_token_counter_follows_typing(page: Page, server: str):
    counter = page.locator("#create-prompt-tokens")
    expect(counter).to_have_text(_counter_text(_tokens(server, "")))  # counted on load: "0/75"
    prompt = "a red fox in the snow, highly detailed"
    expected = _counter_text(_tokens(server, prompt))
    assert re.fullmatch(r"[1-9]\d*/75", expected), expected
    page.locator("#create-prompt").press_sequentially(prompt)
    expect(counter).to_have_text(expected)
    expect(counter).not_to_have_class(re.compile(r"\bover\b"))
    assert page.locator("#create-prompt").get_attribute("aria-describedby") == "create-prompt-tokens"


def test_the_token_counter_shows_each_75_token_chunk(page: Page, server: str):
    prompt = "cat " * 100
    counts = _tokens(server, prompt)
    assert [chunk["tokens"] for chunk in counts["chunks"]] == [75, 25], counts
    page.locator("#create-prompt").fill(prompt)
    counter = page.locator("#create-prompt-tokens")
    expect(counter).to_have_text("75/75 · 25/75")
    assert _counter_text(counts) == "75/75 · 25/75"
    if counts["model_chunks"] < 2:  # a model fixed at 77 tokens: the second chunk is not used
        expect(counter).to_have_class(re.compile(r"\bover\b"))
    else:
        expect(counter).not_to_have_class(re.compile(r"\bover\b"))
    shot(page, "desktop-token-count")

    # One chunk more than the model takes: the counter is marked, and its title says why.
    longer = "cat " * (75 * counts["model_chunks"] + 5)
    over = _tokens(server, longer)
    assert over["dropped_tokens"] > 0 and over["warnings"], over
    page.locator("#create-prompt").fill(longer)
    expect(counter).to_have_text(_counter_text(over))
    expect(counter).to_have_class(re.compile(r"\bover\b"))
    expect(counter).to_have_attribute("title", "\n".join(over["warnings"]))
    shot(page, "desktop-token-count-over")


def test_the_edit_tab_s_token_counter_names_extra_networks(page: Page, server: str):
    page.get_by_role("tab", name="Edit an image").click()
    prompt = "a pencil sketch of a cat <lora:sketchy:0.8>"
    counts = _tokens(server, prompt)
    assert counts["extra_networks"] == ["<lora:sketchy:0.8>"], counts
    page.locator("#edit-prompt").fill(prompt)
    counter = page.locator("#edit-prompt-tokens")
    expect(counter).to_have_text(_counter_text(counts))
    expect(counter).to_have_attribute("title", re.compile(r"<lora:sketchy:0\.8>.*not applied"))
    expect(page.locator("#error")).to_be_hidden()


def test_a_late_answer_for_older_text_never_replaces_the_newer_count(page: Page, server: str):
    """The first request is held back until the second has been answered: the counter shows the
    latest text's count, whatever becomes of the older request."""
    held = []

    def hold_the_first(route):
        if not held:
            held.append(route)  # neither answered nor passed on for now
        else:
            route.continue_()

    page.route("**/prompt/tokens", hold_the_first)
    counter = page.locator("#create-prompt-tokens")
    page.locator("#create-prompt").fill("a cat")
    deadline = time.monotonic() + 10
    while not held:  # past the debounce the first request goes out, and is held
        assert time.monotonic() < deadline, "the counter never asked"
        page.wait_for_timeout(100)
    newer = "a dog on a skateboard in the park"
    page.locator("#create-prompt").fill(newer)
    expected = _counter_text(_tokens(server, newer))
    expect(counter).to_have_text(expected)
    stale = {"chunks": [{"tokens": 1, "of": 75}], "token_count": 1, "model_chunks": 1, "dropped_tokens": 0}
    with contextlib.suppress(Exception):  # the page may have aborted it already, as it should
        held[0].fulfill(status=200, content_type="application/json", body=json.dumps(stale))
    page.wait_for_timeout(300)
    expect(counter).to_have_text(expected)
    page.unroute("**/prompt/tokens")


def test_while_the_model_loads_the_counter_waits_quietly(page: Page, server: str):
    """A 503 (the model still loading) shows a muted "…" and no error; the page asks again."""
    answers = []

    def loading_at_first(route):
        answers.append(route.request.post_data_json)
        if len(answers) == 1:
            route.fulfill(
                status=503,
                headers={"Retry-After": "1"},
                content_type="application/json",
                body='{"error": "the model is loading"}',
            )
        else:
            route.continue_()

    page.route("**/prompt/tokens", loading_at_first)
    counter = page.locator("#create-prompt-tokens")
    page.locator("#create-prompt").fill("a fox waiting for the model")
    expect(counter).to_have_text("…")
    expect(counter).to_have_class(re.compile(r"\bwaiting\b"))
    expect(page.locator("#error")).to_be_hidden()
    expect(counter).to_have_text(_counter_text(_tokens(server, "a fox waiting for the model")))
    assert [answer["prompt"] for answer in answers] == ["a fox waiting for the model"] * 2
    expect(page.locator("#error")).to_be_hidden()
    page.unroute("**/prompt/tokens")


def test_with_auth_on_the_page_asks_for_a_token_or_a_password(browser: BrowserContext, auth_server: str):
    assert httpx.get(f"{auth_server}/sdapi/v1/options", timeout=10).status_code == 401
    # The page and its assets need no credentials: they hold no data, and the page asks for them.
    html = httpx.get(f"{auth_server}/", timeout=10)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    version = httpx.get(f"{auth_server}/health", timeout=10).json()["version"]
    assert f'src="/ui/app.js?v={version}"' in html.text
    assert httpx.get(f"{auth_server}/ui/app.css", timeout=10).status_code == 200
    assert httpx.get(f"{auth_server}/ui/secrets.txt", timeout=10).status_code == 404
    page = browser.new_page()
    page.set_viewport_size(DESKTOP)
    page.goto(auth_server + "/")
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    expect(page.locator("#signin-token")).to_be_focused()
    shot(page, "desktop-signin")

    page.locator("#signin-token").fill("wrong")
    dialog.get_by_role("button", name="Sign in").click()
    expect(dialog.get_by_role("alert")).to_have_text("Those credentials were not accepted.")

    page.locator("#signin-token").fill(TOKEN)
    dialog.get_by_role("button", name="Sign in").click()
    expect(page.locator("#model-status")).to_contain_text("Model: tiny-sd15-lcm")
    _make(page, "a fox behind a password")
    # the counter asks with the same credentials (and said nothing while there were none)
    counted = _tokens(auth_server, "a fox behind a password", {"Authorization": f"Bearer {TOKEN}"})
    expect(page.locator("#create-prompt-tokens")).to_have_text(_counter_text(counted))
    expect(page.locator("#gallery > li")).to_have_count(1, timeout=GENERATION_MS)

    page.get_by_role("button", name="Sign out").click()
    page.reload()
    expect(dialog).to_be_visible()
    page.get_by_label("User").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    dialog.get_by_role("button", name="Sign in").click()
    expect(page.locator("#model-status")).to_contain_text("Model: tiny-sd15-lcm")
    page.close()
