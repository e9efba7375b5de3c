"""The export-clip tool (from a saved transformers folder), other tower shapes, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pi_axera_sd.cli import main
from pi_axera_sd.interrogate.layout import MANIFEST, resolve_clip_layout
from pi_axera_sd.interrogate.loading import build_interrogator, load_interrogator
from support.clip import random_image, settings_for, warm


def _embeddings(clip_dir, tags_file, cache):
    found = load_interrogator(settings_for(clip_dir, cache, tags_file))
    warm(found)
    return found


def test_export_clip_from_a_transformers_folder(tiny_clip, clip_exports, tags_file, tmp_path, capsys):
    from transformers import CLIPImageProcessor

    source = tmp_path / "hf"
    tiny_clip.save_pretrained(source)
    CLIPImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}).save_pretrained(
        source
    )
    out = tmp_path / "exported"
    assert main(["models", "export-clip", str(source), str(out), "--split-projections"]) == 0
    assert "wrote" in capsys.readouterr().out

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["source"] == str(source)
    assert (manifest["image_resize"], manifest["image_size"]) == (256, 224)
    assert manifest["vision_projected"] is False and manifest["projection_dim"] == 24
    assert {"clip_base_vision.onnx", "clip_base_text.onnx", "visual_projection.npy"} <= set(manifest["files"])
    assert (out / "tokenizer" / "vocab.json").is_file()

    ours = _embeddings(out, tags_file, tmp_path / "c1")
    base = _embeddings(clip_exports["projected"], tags_file, tmp_path / "c2")
    np.testing.assert_allclose(ours.embeddings, base.embeddings, atol=1e-5)
    assert ours.image_encoder.spec.resize == 256


@pytest.mark.torch
def test_random_clip_command(tmp_path):
    out = tmp_path / "rnd"
    assert main(["models", "random-clip", str(out), "--static-text-batch", "2", "--int32-ids"]) == 0
    layout = resolve_clip_layout(out)
    assert layout.manifest["text_batch"] == 2 and layout.manifest["text_input_dtype"] == "int32"


def test_text_tower_with_all_hidden_states_and_a_mask(tiny_clip, clip_exports, tags_file, tmp_path):
    """A tower that takes an attention mask and returns every hidden state (EOS gathered here)."""
    import shutil

    import torch

    from pi_axera_sd.modeltools.export_clip import export_onnx

    class AllStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text_model = tiny_clip.text_model

        def forward(self, input_ids, attention_mask):
            return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    folder = tmp_path / "clip"
    shutil.copytree(clip_exports["split"], folder)
    ids = torch.full((1, 77), 49407, dtype=torch.long)
    ids[0, :3] = torch.tensor([49406, 320, 49407])
    export_onnx(
        AllStates(),
        (ids, torch.ones_like(ids)),
        folder / "clip_base_text.onnx",
        ["input_ids", "attention_mask"],
        ["last_hidden_state"],
    )
    found = _embeddings(folder, tags_file, tmp_path / "c1")
    base = _embeddings(clip_exports["projected"], tags_file, tmp_path / "c2")
    assert found.text_encoder.batch == 1
    np.testing.assert_allclose(found.embeddings, base.embeddings, atol=1e-5)


def test_projection_stored_as_torch_weight_is_transposed(clip_exports, tags_file, tmp_path):
    import shutil

    folder = tmp_path / "clip"
    shutil.copytree(clip_exports["split"], folder)
    matrix = np.load(folder / "visual_projection.npy")  # [48, 24]
    np.save(folder / "visual_projection.npy", matrix.T.copy())  # [24, 48], torch Linear layout
    layout = resolve_clip_layout(folder)
    found = build_interrogator(layout, ["cat"], cache_dir=None)
    base = build_interrogator(resolve_clip_layout(clip_exports["projected"]), ["cat"], cache_dir=None)
    image = random_image(100, 100)
    np.testing.assert_allclose(found.image_encoder.encode(image), base.image_encoder.encode(image), atol=1e-5)


def test_cli_interrogate(clip_exports, tags_file, tmp_path, capsys):
    image = tmp_path / "in.png"
    random_image(120, 80).save(image)
    common = ["--clip-dir", str(clip_exports["projected"]), "--cache-dir", str(tmp_path / "cache")]
    argv = ["interrogate", str(image), *common, "--tags-file", str(tags_file)]
    assert main([*argv, "--threshold", "-1", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["interrogations"]) == 3
    assert out["caption"] == ", ".join(t["tag"] for t in out["interrogations"])

    assert main([*argv, "--categories", '{"gender": ["man", "woman"]}']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"]["gender"]["winner"] in ("man", "woman")

    assert main([*argv, "--categories", '{"gender": "man"}']) == 2
    assert "list of label strings" in capsys.readouterr().err


def test_cli_interrogate_without_a_model(tmp_path, capsys):
    image = tmp_path / "in.png"
    random_image(20, 20).save(image)
    assert main(["interrogate", str(image), "--clip-dir", str(tmp_path / "none")]) == 2
    assert "export-clip" in capsys.readouterr().err


@pytest.mark.torch
@pytest.mark.parametrize("bad", ["not-a-model-folder"])
def test_export_from_a_bad_source(tmp_path, bad, capsys):
    assert main(["models", "export-clip", str(tmp_path / bad), str(tmp_path / "out")]) == 2
    assert "CLIPModel" in capsys.readouterr().err
