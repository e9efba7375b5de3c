"""Which random generator draws the latents (A1111's ``randn_source`` option).

* ``CPU`` (default): torch's CPU generator (:mod:`torch_rng`), as the original service, diffusers with
  ``torch.Generator()`` and A1111 with ``randn_source = CPU`` draw them, so their seeds carry over.
  A1111's ``GPU`` is accepted as the same thing: on a machine without CUDA, A1111's GPU noise is
  drawn on the CPU.
* ``PCG64``: numpy's default generator, what this service used before; kept for old seeds.

A1111's ``NV`` (a reproduction of CUDA's Philox generator) is not offered: it could not be proved
against a CUDA reference here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pi_axera_sd.defaults import DEFAULT_RANDN_SOURCE, RANDN_SOURCE_RULE, randn_source_name
from pi_axera_sd.engine.torch_rng import TorchCpuGenerator
from pi_axera_sd.errors import InvalidInput

NoiseFn = Callable[[tuple[int, ...]], np.ndarray]

# The original service sampled the VAE posterior (img2img) from its own generator seeded 0.
POSTERIOR_SEED = 0


def randn_source(value: object) -> str:
    """A client's or the settings' name for a source -> one of :data:`pi_axera_sd.defaults.RANDN_SOURCES`."""
    name = randn_source_name(value)
    if name is None:
        raise InvalidInput(f"{RANDN_SOURCE_RULE}, not {value!r}")
    return name


def seeded_noise(seed: int, source: str = DEFAULT_RANDN_SOURCE) -> NoiseFn:
    """One generator for one image: successive calls continue its stream, as torch's do."""
    if source == "CPU":
        return TorchCpuGenerator(seed).randn
    if source == "PCG64":
        rng = np.random.default_rng(seed)
        return lambda shape: rng.standard_normal(shape, dtype=np.float32)
    raise InvalidInput(f"unknown randn_source {source!r}")


def posterior_noise(source: str, request_noise: NoiseFn) -> NoiseFn:
    """Noise for img2img's VAE posterior sample: torch's generator seeded 0 for ``CPU`` (the prior
    service's procedure), the request's own stream for ``PCG64`` (this service's old behaviour)."""
    return TorchCpuGenerator(POSTERIOR_SEED).randn if source == "CPU" else request_noise
