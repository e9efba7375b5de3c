"""Every default value and choice list that more than one module needs: one home each.

Choice lists are ``Literal`` types (what ``Settings`` and the schemas are typed with) and the
tuples derived from them (what argparse ``choices`` and error messages use), so the two never drift.
Nothing here imports the rest of the package: any layer may import it.
"""

from __future__ import annotations

from typing import Literal, get_args

# ---- img2img strength when a request names none: one table, by dialect -----------------------------
# A1111's img2img default (the /sdapi routes, the OpenAI edits route, the CLI and the engine).
A1111_STRENGTH = 0.75
# The original Pi service's /generate default, kept for its clients.
GENERATE_STRENGTH = 0.5
# AXERA's sample server: img2img at 0.5 (its two LCM steps: 499, 259).
AXERA_STRENGTH = 0.5
Dialect = Literal["a1111", "openai", "generate", "axera"]
STRENGTH_BY_DIALECT: dict[Dialect, float] = {
    "a1111": A1111_STRENGTH,
    "openai": A1111_STRENGTH,  # OpenAI's edits have no strength; ours follows A1111's
    "generate": GENERATE_STRENGTH,
    "axera": AXERA_STRENGTH,
}

# ---- the sampler ------------------------------------------------------------------------------------
# LCM's 4-step txt2img schedule (the rows of AXERA's time_input_txt2img.npy belong to these).
TXT2IMG_TIMESTEPS = (999, 759, 499, 259)
# SD1.5's VAE latent scaling (diffusers' vae.config.scaling_factor), unless the model says otherwise.
VAE_SCALING_FACTOR = 0.18215

# ---- the prompt ---------------------------------------------------------------------------------
# 77-token chunks a long prompt may fill on a model with a dynamic context (77*k tokens): 8 is 600
# prompt tokens, far past what clients send, and bounds the UNet's attention work per request.
MAX_PROMPT_CHUNKS = 8
# Classifier-free guidance is off by default (LCM is distilled for CFG 1: one UNet run per step).
# Turned on, cfg_scale is capped here: LCM's images degrade above about 2.
MAX_CFG_SCALE = 2.0

# ---- interrogation (the original service's defaults) ------------------------------------------
TAG_TOP_K = 10  # flat tags: at most this many
TAG_THRESHOLD = 0.22  # flat tags: cosine score >= this
GENERAL_TOP_K = 10  # structured mode's general tags: at most this many
GENERAL_THRESHOLD = 0.2  # structured mode's general tags: score > this

# ---- VAE decoders -----------------------------------------------------------------------------------
Vae = Literal["full", "tiny"]  # the model's VAE decoder, or TAESD (vae_decoder_tiny.*)
VAE_CHOICES: tuple[Vae, ...] = get_args(Vae)
DEFAULT_VAE: Vae = "full"
TINY_VAE_NAMES = ("tiny", "taesd")  # what clients may call the tiny decoder (A1111 names it taesd)

# ---- noise ------------------------------------------------------------------------------------------
RandnSource = Literal["CPU", "PCG64"]  # torch's CPU generator (A1111's default) or numpy's PCG64
RANDN_SOURCES: tuple[RandnSource, ...] = get_args(RandnSource)
DEFAULT_RANDN_SOURCE: RandnSource = "CPU"
# What clients and settings may call them: A1111's GPU is CPU here (no CUDA noise), NUMPY is PCG64.
RANDN_ALIASES: dict[str, RandnSource] = {"CPU": "CPU", "GPU": "CPU", "PCG64": "PCG64", "NUMPY": "PCG64"}
RANDN_SOURCE_RULE = "randn_source must be one of CPU, GPU (= CPU here) or PCG64"


def randn_source_name(value: object) -> RandnSource | None:
    """A client's or the settings' name for a noise source -> its canonical name, None if unknown."""
    return RANDN_ALIASES.get(value.strip().upper()) if isinstance(value, str) else None


# ---- DeepCache --------------------------------------------------------------------------------------
DEEP_CACHE_OFF = 0


def check_deep_cache_interval(value: int) -> int:
    """0 (off) or N >= 2 (a full UNet step every N steps); 1 would reuse nothing, so it is refused."""
    if value < 0 or value == 1:
        raise ValueError("must be 0 (off) or an interval of 2 or more (full UNet every N steps)")
    return value


# ---- runtimes and providers -------------------------------------------------------------------------
Runtime = Literal["auto", "onnxruntime", "axengine", "openvino"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
Device = Literal["cpu", "cuda"]  # ONNX Runtime's target
DEVICES: tuple[Device, ...] = get_args(Device)
AxProvider = Literal["AxEngineExecutionProvider", "AXCLRTExecutionProvider"]  # board, M.2 card
AX_PROVIDERS: tuple[AxProvider, ...] = get_args(AxProvider)
