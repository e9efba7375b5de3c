"""torch's CPU ``randn`` in numpy, so a seed noted in the original service, in diffusers with a CPU
``torch.Generator`` or in A1111 with ``randn_source = CPU`` gives the same latents here.

What torch does (ATen ``CPUGeneratorImpl`` and ``normal_kernel``, read from the public source):

* The engine is MT19937 seeded with the standard ``init_genrand`` from the low 32 bits of the seed;
  numpy's legacy ``RandomState(seed)`` seeds the same way, so its bit generator supplies the words.
* A float32 tensor of >= 16 elements first fills every element with a uniform
  ``(word & 0xFFFFFF) * 2**-24``, then transforms blocks of 16 in place with Box-Muller:
  ``u1 = 1 - d[j]``, ``u2 = d[j+8]``, ``r = sqrt(-2 ln u1)``, ``d[j] = r cos(2 pi u2)``,
  ``d[j+8] = r sin(2 pi u2)`` for j in 0..7. If the size is not a multiple of 16, the last 16
  elements are refilled with 16 fresh uniforms and transformed again.
* A smaller tensor is filled element by element from ``normal_distribution<double>``: two 53-bit
  uniforms (each from two words, high word first), ``r = sqrt(-2 log1p(-u2))``, ``theta = 2 pi u1``;
  it returns ``r cos theta`` and keeps ``r sin theta`` in the generator for the next such draw.

The float path is computed as torch's scalar kernel computes it (the one aarch64, i.e. a Pi,
runs): each step rounded to float32, ``theta`` formed in double and rounded. Measured against
``torch.randn`` (tests/engine/test_seed_parity.py): ~98.5% of values bit-exact, the rest within 3 ulp
(|d| <= 5e-7), since libm's float log/sin/cos are not always correctly rounded. torch's own AVX2/
AVX512 kernels use vectorised approximations and differ from its scalar kernel (and from this)
by up to ~2e-6. The small-tensor path is bit-exact.
"""

from __future__ import annotations

import math

import numpy as np

_FLOAT_MASK = np.uint64((1 << 24) - 1)
_FLOAT_SCALE = 1.0 / (1 << 24)
_DOUBLE_MASK = (1 << 53) - 1
_DOUBLE_SCALE = 1.0 / (1 << 53)
_BLOCK = 16


class TorchCpuGenerator:
    """``torch.Generator().manual_seed(seed)`` followed by ``torch.randn(shape, generator=g)`` calls."""

    def __init__(self, seed: int) -> None:
        # RandomState's integer seeding is init_genrand, as torch's mt19937 constructor is.
        self._bits = np.random.RandomState(int(seed) & 0xFFFFFFFF)._bit_generator
        self._cached_normal: float | None = None

    def _words(self, count: int) -> np.ndarray:
        return self._bits.random_raw(count)

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array of ``shape`` equal to torch's ``randn(shape, generator=g)``."""
        size = math.prod(shape)
        if size >= _BLOCK:
            return self._block_normals(size).reshape(shape)
        return np.array([self._double_normal() for _ in range(size)], dtype=np.float32).reshape(shape)

    def _uniforms(self, count: int) -> np.ndarray:
        return (self._words(count) & _FLOAT_MASK).astype(np.float64) * _FLOAT_SCALE

    def _block_normals(self, size: int) -> np.ndarray:
        data = self._uniforms(size)
        whole = size - size % _BLOCK
        out = np.empty(size, dtype=np.float32)
        out[:whole] = _box_muller_blocks(data[:whole])
        if whole != size:
            # torch refills and recomputes the last 16 (overlapping the last whole block).
            out[size - _BLOCK :] = _box_muller_blocks(self._uniforms(_BLOCK))
        return out

    def _double_uniform(self) -> float:
        hi, lo = (int(w) for w in self._words(2))
        return (((hi << 32) | lo) & _DOUBLE_MASK) * _DOUBLE_SCALE

    def _double_normal(self) -> float:
        if self._cached_normal is not None:
            value, self._cached_normal = self._cached_normal, None
            return value
        u1 = self._double_uniform()
        u2 = self._double_uniform()
        radius = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        self._cached_normal = radius * math.sin(theta)
        return radius * math.cos(theta)


def _box_muller_blocks(uniforms: np.ndarray) -> np.ndarray:
    """Box-Muller over consecutive blocks of 16 uniforms, laid out and rounded as torch does it:
    every operation in float32 (each function evaluated in float64 and rounded once)."""
    f32 = np.float32
    blocks = uniforms.astype(f32).reshape(-1, 2, 8)
    u1 = f32(1.0) - blocks[:, 0]
    u2 = blocks[:, 1]
    radius = np.sqrt(f32(-2.0) * np.log(u1.astype(np.float64)).astype(f32))
    theta = (2.0 * math.pi * u2.astype(np.float64)).astype(f32).astype(np.float64)
    cos = np.cos(theta).astype(f32)
    sin = np.sin(theta).astype(f32)
    return np.stack([radius * cos, radius * sin], axis=1).reshape(-1)
