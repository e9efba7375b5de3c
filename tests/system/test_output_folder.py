"""Saving a copy of an image is a side effect: a full disk must not fail the finished image.

The disk fills for real inside ``fileio.write_atomic`` (its write raises ENOSPC after some bytes,
as a full filesystem does), so its own clean-up and the dated folder's are what is checked.
"""

from __future__ import annotations

import base64
import errno
import io

import httpx
import pytest
from PIL import Image

from pi_axera_sd import fileio
from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.core import host_work
from support.server import load_tiny, make_settings, running_server


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write of an image copy hits a full disk halfway through its bytes."""
    real = fileio.write_atomic

    def filling(path, data):
        def write(f):
            f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        real(path, write)

    monkeypatch.setattr(host_work, "write_bytes_atomic", filling)
    return filling


def _png_of(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_a_full_output_folder_answers_the_image_logs_one_error_and_shows_in_health(
    tiny_model_dir, tmp_path, full_disk, caplog
):
    out = tmp_path / "out"
    out.mkdir()
    settings = make_settings(tiny_model_dir, save_images=True, output_dir=out)
    app = create_app(settings, pipeline=load_tiny(tiny_model_dir))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/health").json()["output"] == {"folder": str(out), "state": "ok", "saved": 0}
        answer = http.post("/sdapi/v1/txt2img", json={"prompt": "a full disk", "seed": 5})
        assert answer.status_code == 200, answer.text
        assert _png_of(answer.json()["images"][0]).size == (128, 128)
        generate = http.post("/generate", json={"prompt": "a full disk", "seed": 5})
        assert generate.status_code == 200 and generate.json()["status"] == "ok"
        axera = http.post("/generate", json={"prompt": "x", "seed": 5, "return_base64": False})
        assert axera.status_code == 200, axera.text
        assert axera.json()["save_path"] is None
        assert axera.json()["save_error"] == "output folder not writable or full: No space left on device"
        output = http.get("/health").json()["output"]
        assert output["state"] == "failing" and output["saved"] == 0
        assert output["error"] == "output folder not writable or full: No space left on device"
        metrics = http.get("/metrics").text
        assert "pi_axera_sd_save_failures_total 3.0" in metrics
        assert 'pi_axera_sd_job_failures_total{kind="generate"' not in metrics  # not a runtime fault
    assert list(out.rglob("*")) == []  # no partial file, no empty dated folder
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 3 and all(r.fields["output_dir"] == str(out) for r in errors)
    assert all("inference" not in r.getMessage() for r in errors)


def test_a_later_copy_that_is_written_clears_the_failing_state(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    settings = make_settings(tiny_model_dir, save_images=True, output_dir=out)
    app = create_app(settings, pipeline=load_tiny(tiny_model_dir))
    real = host_work.write_bytes_atomic
    calls = []

    def once_full(path, data):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(host_work, "write_bytes_atomic", once_full)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("/generate", json={"prompt": "a", "seed": 1}).status_code == 200
        assert http.get("/health").json()["output"]["state"] == "failing"
        assert http.post("/generate", json={"prompt": "a", "seed": 2}).status_code == 200
        assert http.get("/health").json()["output"] == {"folder": str(out), "state": "ok", "saved": 1}
    assert len(list(out.rglob("*.png"))) == 1
