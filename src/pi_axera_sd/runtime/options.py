"""How sessions are created: which runtime, which execution provider, how many threads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pi_axera_sd.defaults import AX_PROVIDERS, DEVICES, RUNTIMES


@dataclass(frozen=True)
class RuntimeOptions:
    """Settings shared by every session the engine opens.

    runtime: ``auto`` picks pyaxengine for ``.axmodel`` files and ONNX Runtime for ``.onnx``.
    device: ONNX Runtime target, ``cpu`` or ``cuda`` (CUDA is used only when its provider exists).
    threads: intra-op threads for CPU runtimes; 0 lets the runtime decide (all physical cores).
    ax_provider: pyaxengine provider; ``None`` takes the first one the installed package offers
    (``AxEngineExecutionProvider`` on an AX650N board, ``AXCLRTExecutionProvider`` on an M.2 card).
    npu_device: M.2 card index for ``AXCLRTExecutionProvider`` (``None``: the driver's default, 0).
    """

    runtime: str = "auto"
    device: str = "cpu"
    threads: int = 0
    ax_provider: str | None = None
    npu_device: int | None = None
    optimize: bool = True  # ONNX Runtime graph optimisation (all levels)
    precision: str | None = None  # OpenVINO inference precision: None (its default), "f32", "bf16"
    cache_dir: Path | None = None  # OpenVINO compiled-model cache root; None: compile at every start
    release_mapped: bool = True  # OpenVINO: unmap model-file pages once compiled (runtime/ovmemory.py)

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {self.runtime!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be 'cpu' or 'cuda', not {self.device!r}")
        if self.ax_provider is not None and self.ax_provider not in AX_PROVIDERS:
            raise ValueError(f"ax_provider must be one of {AX_PROVIDERS}, not {self.ax_provider!r}")
        if self.npu_device is not None and self.npu_device < 0:
            raise ValueError("npu_device must be >= 0")
        if self.precision not in (None, "f32", "bf16", "f16"):
            raise ValueError(f"precision must be f32, bf16 or f16, not {self.precision!r}")
        if self.threads < 0:
            raise ValueError("threads must be >= 0")
