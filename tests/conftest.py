"""Session fixtures: one tiny random SD1.5-shaped model, exported by the project's own tool."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytest

pytest_plugins = ["test_clip_support"]  # the shared tiny-CLIP fixtures

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
logging.getLogger("transformers").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="session")
def tiny_pipe():
    """A diffusers StableDiffusionPipeline (LCM scheduler) with tiny random weights."""
    from pi_axera_sd.modeltools.tiny import build_sd_pipeline

    return build_sd_pipeline("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_taesd():
    """A tiny random AutoencoderTiny (TAESD architecture)."""
    from pi_axera_sd.modeltools.tiny import build_taesd

    return build_taesd("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipe, tiny_taesd, tmp_path_factory) -> Path:
    """The tiny model in AXERA's layout (cut UNet fed from time_input_*.npy), with a TAESD decoder."""
    from pi_axera_sd.modeltools.export_sd import export_pipeline

    out = tmp_path_factory.mktemp("tiny-axera")
    export_pipeline(
        tiny_pipe, out, name="tiny-sd15-lcm", source="tests", tiny_vae=tiny_taesd, tiny_vae_source="tests"
    )
    return out


@pytest.fixture(scope="session")
def tiny_plain_dir(tiny_pipe, tmp_path_factory) -> Path:
    """The same weights with a plain UNet export that takes the timestep."""
    from pi_axera_sd.modeltools.export_sd import export_pipeline

    out = tmp_path_factory.mktemp("tiny-plain")
    export_pipeline(tiny_pipe, out, name="tiny-sd15-lcm-plain", source="tests", unet_time_input="timestep")
    return out


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import Pipeline

    return Pipeline.load(resolve_layout(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_lcm_pipe():
    """A diffusers LatentConsistencyModelPipeline, tiny, whose UNet takes a guidance embedding."""
    from pi_axera_sd.modeltools.tiny import build_lcm_pipeline

    return build_lcm_pipeline(seed=0, guidance_dim=32)


@pytest.fixture(scope="session")
def tiny_optimum_onnx_dir(tiny_lcm_pipe, tmp_path_factory) -> Path:
    """The tiny LCM model in the diffusers/optimum layout, ONNX per component folder."""
    from pi_axera_sd.modeltools.export_optimum import export_optimum_layout

    return export_optimum_layout(tiny_lcm_pipe, tmp_path_factory.mktemp("tiny-optimum-onnx"), fmt="onnx")


@pytest.fixture(scope="session")
def tiny_optimum_ov_dir(tiny_lcm_pipe, tmp_path_factory) -> Path:
    """The same model as OpenVINO IR (openvino_model.xml + .bin per component folder)."""
    from pi_axera_sd.modeltools.export_optimum import export_optimum_layout

    return export_optimum_layout(tiny_lcm_pipe, tmp_path_factory.mktemp("tiny-optimum-ov"), fmt="openvino")
