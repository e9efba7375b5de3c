"""Session fixtures: one tiny random SD1.5-shaped model, exported by the project's own tool."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytest

pytest_plugins = ["test_clip_support"]  # the shared tiny-CLIP fixtures

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
# runtime=auto would pick OpenVINO (BF16 on some CPUs); the reference tests need ONNX Runtime's
# exact FP32. tests/test_readme_commands.py clears this to run the default as users get it.
os.environ.setdefault("PI_AXERA_SD_RUNTIME", "onnxruntime")
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
