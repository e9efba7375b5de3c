"""The model contract: what each component is called on disk and what its tensors look like.

One home for the facts the engine (:mod:`pipeline`), the layouts (:mod:`layout`,
:mod:`layout_diffusers`), ``models verify``, ``models pull`` and the exporters all rely on.
Only names and pure helpers live here; nothing opens a file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pi_axera_sd.runtime.base import TensorSpec

# ---- components -------------------------------------------------------------------------------------
TEXT_ENCODER, UNET, VAE_DECODER, VAE_ENCODER, VAE_DECODER_TINY = (
    "text_encoder",
    "unet",
    "vae_decoder",
    "vae_encoder",
    "vae_decoder_tiny",
)
VAE_ENCODER_TINY = "vae_encoder_tiny"  # optional TAESD encoder: img2img with the tiny VAE
# optional DeepCache pair (engine.deepcache): the UNet that also returns DEEP_FEATURE, and its shallow path
UNET_DEEP, UNET_SHALLOW, DEEP_FEATURE = "unet_deep", "unet_shallow", "deep_feature"
TIME_INPUT_TXT2IMG, TIME_INPUT_IMG2IMG = "time_input_txt2img", "time_input_img2img"
TOKENIZER = "tokenizer"
TOKENIZER_FILES = ("vocab.json", "merges.txt")  # CLIP's BPE pair, in the tokenizer folder
# The fast tokenizer in one file: all that transformers 5 and optimum-intel 2.2 write. Preferred.
TOKENIZER_JSON = "tokenizer.json"

# ---- AXERA layout (AXERA-TECH/lcm-lora-sdv1-5, models/): <stem>.onnx or <stem>.axmodel --------------
AXERA_SUFFIXES = (".axmodel", ".onnx")
TEXT_ENCODER_STEM = "text_encoder/sd15_text_encoder_sim"
FLAT_TEXT_ENCODER_STEM = "sd15_text_encoder_sim"  # the export scripts' output: at the folder root
AXERA_STEMS = {
    TEXT_ENCODER: TEXT_ENCODER_STEM,
    UNET: UNET,
    VAE_DECODER: VAE_DECODER,
    VAE_ENCODER: VAE_ENCODER,
    VAE_DECODER_TINY: VAE_DECODER_TINY,
    VAE_ENCODER_TINY: VAE_ENCODER_TINY,
    UNET_DEEP: UNET_DEEP,
    UNET_SHALLOW: UNET_SHALLOW,
}
TIME_INPUT_FILES = {
    TIME_INPUT_TXT2IMG: "time_input_txt2img.npy",
    TIME_INPUT_IMG2IMG: "time_input_img2img.npy",
}
MANIFEST = "manifest.json"  # written by our exporters: name, scaling, timesteps, file sizes and sha256

# ---- diffusers / optimum layout: one folder per component -------------------------------------------
MODEL_INDEX = "model_index.json"
DIFFUSERS_COMPONENTS = (TEXT_ENCODER, UNET, VAE_DECODER, VAE_ENCODER)
ONNX_FILE = "model.onnx"
OPENVINO_FILE = "openvino_model.xml"  # + openvino_model.bin, its weights
COMPONENT_CONFIG = "config.json"  # unet/ and vae_decoder/ hold one (sample size, guidance width, scaling)
SCHEDULER_CONFIG = "scheduler/scheduler_config.json"


def axera_component_files() -> tuple[str, ...]:
    """Every file name of the AXERA layout's components (the optional TAESD and DeepCache files included)."""
    return (
        # the UNets' external weights
        *(f"{AXERA_STEMS[c]}.onnx.data" for c in (UNET, UNET_DEEP, UNET_SHALLOW)),
        *(f"{stem}{suffix}" for stem in AXERA_STEMS.values() for suffix in reversed(AXERA_SUFFIXES)),
        *TIME_INPUT_FILES.values(),
    )


def openvino_layout_patterns() -> tuple[str, ...]:
    """What the engine reads of a diffusers/optimum OpenVINO export (no ONNX or PyTorch copies)."""
    ir = OPENVINO_FILE.removesuffix(".xml")
    return (
        MODEL_INDEX,
        SCHEDULER_CONFIG,
        f"{TOKENIZER}/*",
        *(f"{c}/{ir}.*" for c in DIFFUSERS_COMPONENTS),
        *(f"{c}/{COMPONENT_CONFIG}" for c in (UNET, VAE_DECODER)),
    )


def diffusers_component_files() -> tuple[str, ...]:
    """The files of a diffusers/optimum layout's components, ONNX or OpenVINO IR."""
    return (MODEL_INDEX, *(f"{c}/{f}" for c in DIFFUSERS_COMPONENTS for f in (ONNX_FILE, OPENVINO_FILE)))


# ---- tensors ----------------------------------------------------------------------------------------
TOKENS = 77  # CLIP's context length: input_ids [1,77]
TEXT_OUTPUT = "last_hidden_state"  # the text encoder's output the UNet takes (else its first output)
LATENT_CHANNELS = 4
# An inpainting UNet (diffusers' layout, e.g. stable-diffusion-inpainting) takes the latent, the mask
# and the masked image's latent stacked: 4 + 1 + 4 channels.
INPAINT_UNET_CHANNELS = 9
VAE_FACTOR = 8  # image side / latent side
# The AXERA export cuts the UNet after silu(time_embedding(time_proj(t))) and names that tensor so.
AXERA_TIME_INPUT = "/down_blocks.0/resnets.0/act_1/Mul_output_0"
TIMESTEP_INPUTS = ("timestep", "timesteps", "t")
# LCM UNets distilled with a guidance input (diffusers' time_cond_proj_dim) take its embedding here
GUIDANCE_INPUT = "timestep_cond"


@dataclass(frozen=True)
class UnetInputs:
    """A UNet's inputs by role; a role is None where no input plays it."""

    sample: TensorSpec | None
    hidden: TensorSpec | None
    time: TensorSpec | None
    guidance: TensorSpec | None
    unknown: tuple[TensorSpec, ...]  # inputs that fit no role: not an SD UNet

    @property
    def complete(self) -> bool:
        return None not in (self.sample, self.hidden, self.time) and not self.unknown

    @property
    def takes_embedding(self) -> bool:
        """True: AXERA's cut graph, fed rows of time_input_*.npy; False: a plain timestep input."""
        time = self.time
        if time is None:
            return False
        last = time.shape[-1] if time.shape else 1
        return time.name == AXERA_TIME_INPUT or (
            time.name not in TIMESTEP_INPUTS and isinstance(last, int) and last > 1
        )


def unet_inputs(inputs: Sequence[TensorSpec]) -> UnetInputs:
    """Find the sample, text, guidance and time inputs by name, falling back to rank for unnamed
    exports (the time input: the one input left)."""
    rest = list(inputs)

    def take(*tests: Callable[[TensorSpec], bool]) -> TensorSpec | None:
        for test in tests:
            for spec in rest:
                if test(spec):
                    rest.remove(spec)
                    return spec
        return None

    sample = take(lambda s: s.name == "sample", lambda s: len(s.shape) == 4)
    hidden = take(lambda s: s.name == "encoder_hidden_states", lambda s: len(s.shape) == 3)
    guidance = take(lambda s: s.name == GUIDANCE_INPUT)
    time = take(lambda s: s.name in (AXERA_TIME_INPUT, *TIMESTEP_INPUTS), lambda s: len(rest) == 1)
    return UnetInputs(sample, hidden, time, guidance, tuple(rest))
