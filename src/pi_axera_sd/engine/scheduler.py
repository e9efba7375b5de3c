"""The LCM sampler (no classifier-free guidance) in numpy.

Numerically this is diffusers' ``LCMScheduler`` with custom timesteps: a "scaled_linear" beta
schedule over 1000 training steps, epsilon prediction, the consistency boundary condition
(sigma_data 0.5, timestep scaling 10), fresh noise between steps and none after the last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pi_axera_sd.defaults import TXT2IMG_TIMESTEPS


@dataclass(frozen=True)
class LcmScheduler:
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    timestep_scaling: float = 10.0
    sigma_data: float = 0.5

    def __post_init__(self) -> None:
        # float32 like diffusers, so the two agree to the last bits that matter.
        betas = (
            np.linspace(self.beta_start**0.5, self.beta_end**0.5, self.num_train_timesteps, dtype=np.float32)
            ** 2
        )
        object.__setattr__(self, "alphas_cumprod", np.cumprod(1.0 - betas, dtype=np.float32))

    def alpha(self, t: int) -> float:
        return float(self.alphas_cumprod[t])  # type: ignore[attr-defined]

    def boundary_scalings(self, t: int) -> tuple[float, float]:
        """(c_skip, c_out) of the consistency model's boundary condition at timestep ``t``."""
        s = t * self.timestep_scaling
        c_skip = self.sigma_data**2 / (s**2 + self.sigma_data**2)
        c_out = s / math.sqrt(s**2 + self.sigma_data**2)
        return c_skip, c_out

    def add_noise(self, latent: np.ndarray, noise: np.ndarray, t: int) -> np.ndarray:
        a = self.alpha(t)
        return (math.sqrt(a) * latent + math.sqrt(1.0 - a) * noise).astype(np.float32)

    def denoise(self, sample: np.ndarray, eps: np.ndarray, t: int) -> np.ndarray:
        """The model's estimate of the clean latent at timestep ``t``."""
        a = self.alpha(t)
        x0 = (sample - math.sqrt(1.0 - a) * eps) / math.sqrt(a)
        c_skip, c_out = self.boundary_scalings(t)
        return (c_out * x0 + c_skip * sample).astype(np.float32)

    def renoise(self, denoised: np.ndarray, noise: np.ndarray, t_next: int) -> np.ndarray:
        """Move the clean estimate to the next (lower) timestep with fresh noise."""
        return self.add_noise(denoised, noise, t_next)


def img2img_timesteps(strength: float, timesteps: Sequence[int] = TXT2IMG_TIMESTEPS) -> tuple[int, ...]:
    """The tail of ``timesteps`` that ``denoising_strength`` keeps (always at least one step).

    With four steps this is the original service's mapping: <= 0.35 -> 1 step, <= 0.60 -> 2,
    <= 0.85 -> 3, else 4; it agrees with diffusers' ``int(steps * strength)`` at 0.25/0.5/0.75/1.
    """
    n = len(timesteps)
    strength = min(max(float(strength), 0.0), 1.0)
    kept = math.ceil(strength * n - 0.4 - 1e-9)
    kept = min(max(kept, 1), n)
    return tuple(timesteps[n - kept :])
