"""Session fixtures: one tiny random SD1.5-shaped model, exported by the project's own tool."""

from __future__ import annotations

import ast
import functools
import importlib.util
import logging
import os
import tempfile
import warnings
from pathlib import Path

import pytest

pytest_plugins = ["support.clip"]  # the shared tiny-CLIP fixtures

# The fast tier (`make test-fast`, i.e. pytest -m "not torch") runs on a base install without torch (nor
# the other heavy extras: diffusers, transformers, onnx, openvino, the client libraries...).
# Tests that build models through torch/diffusers/transformers are marked `torch`: by the fixtures they
# use (directly or through other fixtures), or by module when it imports a heavy package at the top.
TORCH_FIXTURES = frozenset(
    {"tiny_pipe", "tiny_taesd", "tiny_clip", "hf_clip_tokenizer", "processor", "tiny_lcm_pipe"}
)
HEAVY_PACKAGES = frozenset(
    {"torch", "diffusers", "transformers", "onnx", "openvino", "nncf", "schemathesis", "playwright", "openai",
     "webuiapi", "matplotlib"}
)  # fmt: skip
HAVE_TORCH = importlib.util.find_spec("torch") is not None
# Tiers are places: unit (no model, no server: seconds), engine (models, no server), system (servers,
# HAProxy, Chromium, the README's commands, fresh venvs). `make test-fast` runs unit without torch.
TIERS = ("unit", "engine", "system")


@functools.cache
def imports_heavy_packages(path: Path) -> bool:
    """True when the module imports one of HEAVY_PACKAGES at its top level, itself or through a test
    module or ``tests/support`` helper it imports."""
    names: list[str] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    roots = {name.split(".")[0] for name in names}
    tests = Path(__file__).parent  # test modules (in their tier's folder) and tests/support/ helpers
    local = [
        folder / f"{name.replace('.', '/')}.py"
        for name in names
        for folder in (tests, *(tests / t for t in TIERS))
    ]
    return bool(roots & HEAVY_PACKAGES) or any(m.is_file() and imports_heavy_packages(m) for m in local)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not HAVE_TORCH and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return imports_heavy_packages(collection_path) or None
    return None


def pytest_configure(config: pytest.Config) -> None:
    if not HAVE_TORCH and "not torch" not in (config.option.markexpr or ""):
        raise pytest.UsageError(
            "torch is not installed: the full suite needs the test extra (make test); "
            "make test-fast runs the tests that need no torch"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if TORCH_FIXTURES.intersection(getattr(item, "fixturenames", ())) or imports_heavy_packages(
            item.path
        ):
            item.add_marker(pytest.mark.torch)


os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
# OpenVINO's compiled-model cache goes to a folder of this run, not the user's ~/.cache
os.environ.setdefault("PI_AXERA_SD_OPENVINO_CACHE_DIR", tempfile.mkdtemp(prefix="pi-axera-sd-ov-cache-"))
# runtime=auto would pick OpenVINO (BF16 on some CPUs); the reference tests need ONNX Runtime's
# exact FP32. tests/system/test_readme_commands.py clears this to run the default as users get it.
os.environ.setdefault("PI_AXERA_SD_RUNTIME", "onnxruntime")
logging.getLogger("transformers").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="session")
def tiny_pipe():
    """A diffusers StableDiffusionPipeline (LCM scheduler) with tiny random weights."""
    from pi_axera_sd.modeltools.random_sd import build_sd_pipeline

    return build_sd_pipeline("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_taesd():
    """A tiny random AutoencoderTiny (TAESD architecture)."""
    from pi_axera_sd.modeltools.random_sd import build_taesd

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
    from pi_axera_sd.modeltools.random_sd import build_lcm_pipeline

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
