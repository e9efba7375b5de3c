"""Pi Axera SD: Stable Diffusion 1.5 + LCM-LoRA and CLIP tagging on the Axera AX650N, CPUs and GPUs."""

__version__ = "0.1.0"
