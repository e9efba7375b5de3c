"""The SD1.5-LCM pipeline: prompt (+ optional init image) -> RGB pixels, in numpy around sessions.

All model calls go through :class:`~pi_axera_sd.runtime.Session`, so the same code runs on ONNX
Runtime, pyaxengine (AX650N) and OpenVINO. Host-side image work (decoding, resizing, PNG) is done
by the caller, outside the accelerator's lane.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pi_axera_sd.defaults import (
    A1111_STRENGTH,
    DEEP_CACHE_OFF,
    DEFAULT_RANDN_SOURCE,
    DEFAULT_VAE,
    MAX_PROMPT_CHUNKS,
    TXT2IMG_TIMESTEPS,
    VAE_CHOICES,
    VAE_SCALING_FACTOR,
    check_deep_cache_interval,
)
from pi_axera_sd.engine import deepcache
from pi_axera_sd.engine.contract import (
    DEEP_FEATURE,
    INPAINT_UNET_CHANNELS,
    LATENT_CHANNELS,
    TEXT_ENCODER,
    TEXT_OUTPUT,
    TIME_INPUT_TXT2IMG,
    UNET,
    UNET_SHALLOW,
    VAE_DECODER,
    VAE_DECODER_TINY,
    VAE_ENCODER,
    VAE_ENCODER_TINY,
    VAE_FACTOR,
)
from pi_axera_sd.engine.contract_checks import (
    ModelFacts,
    check_deepcache_pair,
    check_sessions,
    check_time_rows,
)
from pi_axera_sd.engine.guidance import DEFAULT_GUIDANCE_SCALE, guidance_embedding
from pi_axera_sd.engine.imageio import from_model_output, resize_image, to_model_input
from pi_axera_sd.engine.layout import ModelLayout, check_layout, missing_time_input_message
from pi_axera_sd.engine.masks import MaskedContent
from pi_axera_sd.engine.noise import NoiseFn, posterior_noise, seeded_noise
from pi_axera_sd.engine.prompts.chunks import Chunk
from pi_axera_sd.engine.prompts.reader import PromptReader, ReadPrompt
from pi_axera_sd.engine.prompts.weighting import apply_emphasis
from pi_axera_sd.engine.scheduler import LcmScheduler, img2img_timesteps
from pi_axera_sd.engine.tokenizer import ClipTokenizer
from pi_axera_sd.errors import MISSING, InvalidInput, ModelError, Problem
from pi_axera_sd.runtime import RuntimeOptions, Session, TensorSpec, open_sessions

MAX_SEED = 2**32 - 1

StepCallback = Callable[[int, int], None]
# (steps done, total, the denoised latent estimate): live previews read it; it must not be kept.
LatentCallback = Callable[[int, int, np.ndarray], None]


def resolve_seed(seed: int | None) -> int:
    """A given seed (reduced into A1111's 32-bit range), or a fresh random one for None/-1."""
    if seed is None or seed == -1:
        return secrets.randbelow(MAX_SEED + 1)
    return int(seed) % (MAX_SEED + 1)


class TimeInputMissing(ModelError):
    """AXERA's cut UNet needs ``time_input_txt2img.npy``; :meth:`Pipeline.load` names the file."""

    def __init__(self, message: str, problems: tuple[Problem, ...], input_name: str) -> None:
        super().__init__(message, problems)
        self.input_name = input_name


@dataclass
class StageTimings:
    text_ms: float = 0.0
    vae_encode_ms: float = 0.0
    unet_ms: list[float] = field(default_factory=list)
    vae_decode_ms: float = 0.0
    total_ms: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "text_ms": round(self.text_ms, 2),
            "vae_encode_ms": round(self.vae_encode_ms, 2),
            "unet_ms": [round(x, 2) for x in self.unet_ms],
            "vae_decode_ms": round(self.vae_decode_ms, 2),
            "total_ms": round(self.total_ms, 2),
        }


@dataclass(frozen=True)
class GenerationParams:
    """One image to make. ``init_image`` is NCHW float32 in [-1, 1] at the model's size."""

    prompt: str
    seed: int
    init_image: np.ndarray | None = None
    strength: float = A1111_STRENGTH
    vae: str = DEFAULT_VAE  # "full" VAE decoder or "tiny" (TAESD), when the model folder has one
    randn_source: str = DEFAULT_RANDN_SOURCE  # which generator draws the noise (engine.noise)
    # Classifier-free guidance: above 1, each step also runs the UNet on the negative prompt and
    # pushes away from it (the caller decides and clamps; 1 = off, LCM's default, one UNet run).
    negative_prompt: str = ""
    cfg_scale: float = 1.0
    prompt_syntax: bool = True  # A1111's prompt language (engine.prompts); False: literal text
    # Inpainting (img2img only): [1,1,h,w] at the latent's size, 1 where the image may change
    # (engine.masks prepares it); outside it the init latent, noised to each step's level, is kept.
    mask: np.ndarray | None = None
    # The same mask at the image's size [1,1,H,W] (a 9-channel UNet sees the masked image); None: the
    # latent mask enlarged
    mask_pixels: np.ndarray | None = None
    masked_content: MaskedContent = "original"  # what the masked area starts from (A1111's inpainting_fill)
    noise_multiplier: float = 1.0  # A1111's initial_noise_multiplier: img2img's first noise scaled

    @property
    def guided(self) -> bool:
        return self.cfg_scale > 1.0


@dataclass
class GenerationResult:
    """An image and what it was made from, so its response and infotext need nothing else."""

    pixels: np.ndarray  # HWC uint8 RGB
    params: GenerationParams  # the request (prompt, strength, VAE, noise source)
    timesteps: tuple[int, ...]  # what the scheduler chose for it
    timings: StageTimings
    model_name: str
    deep_cache: int = DEEP_CACHE_OFF  # the DeepCache interval it was made with (0: every step whole)
    warnings: tuple[str, ...] = ()  # what the model could not follow in the request (never silent)

    @property
    def seed(self) -> int:
        return self.params.seed

    @property
    def randn_source(self) -> str:
        return self.params.randn_source

    @property
    def denoising_strength(self) -> float | None:
        """The img2img strength; None for txt2img (A1111 writes none then)."""
        return self.params.strength if self.params.init_image is not None else None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class _UnetSignature:
    sample: TensorSpec
    hidden: TensorSpec
    time: TensorSpec
    guidance: TensorSpec | None  # timestep_cond of LCM UNets with a guidance embedding


def _check_components(
    sessions: dict[str, Session | None],
    unet_shallow: Session | None,
    time_rows: np.ndarray | None,
    min_rows: int,
    guidance_dim: int | None,
) -> tuple[ModelFacts, _UnetSignature]:
    """Reject files that are not the component they are named as, before the first request: the
    contract's checks (:mod:`contract_checks`), all of them; the error names the first problem.
    With DeepCache, ``sessions[UNET]`` is the deep UNet and ``unet_shallow`` its shallow path."""
    facts = ModelFacts()
    problems = [
        *check_sessions(sessions, facts, guidance_dim),
        *check_time_rows(TIME_INPUT_TXT2IMG, time_rows, facts, min_rows),
    ]
    unet = sessions[UNET]
    if unet_shallow is not None and unet is not None:
        problems += check_deepcache_pair(unet, unet_shallow)
    found = facts.unet
    if problems:
        first = problems[0]
        if first.kind == MISSING and first.component == TIME_INPUT_TXT2IMG and found and found.time:
            raise TimeInputMissing(str(first), tuple(problems), found.time.name)
        raise ModelError(str(first), tuple(problems))
    assert found and found.sample and found.hidden and found.time  # check_unet found every role
    return facts, _UnetSignature(found.sample, found.hidden, found.time, found.guidance)


def _first_output(session: Session, preferred: str) -> str:
    return preferred if preferred in session.output_names else session.output_names[0]


def _static(dim: object, fallback: int) -> int:
    return dim if isinstance(dim, int) and dim > 0 else fallback


class Pipeline:
    """Loaded SD1.5-LCM sessions and the sampling loop. One pipeline serves one inference lane."""

    def __init__(
        self,
        *,
        tokenizer: ClipTokenizer,
        text_encoder: Session,
        unet: Session,
        vae_decoder: Session,
        vae_encoder: Session | None,
        vae_decoder_tiny: Session | None = None,
        tiny_vae_scaling_factor: float = 1.0,
        vae_encoder_tiny: Session | None = None,
        time_embeddings: np.ndarray | None = None,
        timesteps: tuple[int, ...] = TXT2IMG_TIMESTEPS,
        vae_scaling_factor: float = VAE_SCALING_FACTOR,
        model_name: str = "sd15-lcm",
        text_cache_size: int = 128,
        latent_size: int = 64,
        guidance_scale: float | None = None,
        guidance_dim: int | None = None,
        unet_shallow: Session | None = None,
        deep_cache: int = DEEP_CACHE_OFF,
        max_prompt_chunks: int = MAX_PROMPT_CHUNKS,
    ) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.unet = unet
        self.vae_decoder = vae_decoder
        self.vae_encoder = vae_encoder
        self.vae_decoder_tiny = vae_decoder_tiny
        self.vae_encoder_tiny = vae_encoder_tiny
        # DeepCache (engine.deepcache): with the shallow graph, ``unet`` is unet_deep (2 outputs)
        self.unet_shallow = unet_shallow
        self.deep_cache = (
            check_deep_cache_interval(deep_cache) if unet_shallow is not None else DEEP_CACHE_OFF
        )
        # DeepCache's kept feature, per UNet branch (the prompt, the negative prompt, or both batched)
        self._deep_feature: dict[str, np.ndarray] = {}
        self.tiny_vae_scaling_factor = tiny_vae_scaling_factor
        self.timesteps = tuple(timesteps)
        self.vae_scaling_factor = vae_scaling_factor
        self.model_name = model_name
        self.scheduler = LcmScheduler()
        facts, self._unet_sig = _check_components(
            {
                TEXT_ENCODER: text_encoder,
                UNET: unet,
                VAE_DECODER: vae_decoder,
                VAE_ENCODER: vae_encoder,
                VAE_DECODER_TINY: vae_decoder_tiny,
                VAE_ENCODER_TINY: vae_encoder_tiny,
            },
            unet_shallow,
            time_embeddings,
            len(self.timesteps),
            guidance_dim,
        )
        self._text_input = text_encoder.inputs[0].name
        self._text_output = _first_output(text_encoder, TEXT_OUTPUT)
        self._unet_output = unet.output_names[0]
        self._vae_input = vae_decoder.inputs[0].name
        rows = time_embeddings if facts.takes_embedding else None  # checked: present where needed
        self._time_rows = rows.astype(np.float32) if rows is not None else None
        self.guidance_scale = DEFAULT_GUIDANCE_SCALE if guidance_scale is None else float(guidance_scale)
        self._guidance = self._guidance_feed(facts.guidance_width)
        self._text_cache: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self.prompt_reader = PromptReader(tokenizer)
        # Chunks of 77 tokens the UNet takes: a fixed context (AXERA's .axmodel, older exports) takes
        # one; a dynamic one 77*k, up to the setting.
        context = self._unet_sig.hidden.shape[1]
        self.context_chunks = 1 if isinstance(context, int) and context > 0 else max(1, max_prompt_chunks)
        # Batch 2 (negative and positive prompt in one UNet run) needs a free batch axis on every input.
        self.unet_batches = all(
            len(spec.shape) > 0 and not (isinstance(spec.shape[0], int) and spec.shape[0] > 0)
            for spec in unet.inputs
        )
        self._text_cache_size = text_cache_size
        self._cache_lock = threading.Lock()

        latent = self._unet_sig.sample.shape  # dynamic axes (optimum exports) take latent_size
        # a 9-channel inpainting UNet also takes the mask and the masked image's latent each step
        self.inpainting_unet = latent[1] == INPAINT_UNET_CHANNELS
        self.latent_shape = (
            1,
            LATENT_CHANNELS if self.inpainting_unet else _static(latent[1], LATENT_CHANNELS),
            _static(latent[2], latent_size),
            _static(latent[3], latent_size),
        )
        out = vae_decoder.outputs[0].shape
        self.height = _static(out[2] if len(out) == 4 else None, self.latent_shape[2] * VAE_FACTOR)
        self.width = _static(out[3] if len(out) == 4 else None, self.latent_shape[3] * VAE_FACTOR)

    # ---- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, layout: ModelLayout, options: RuntimeOptions | None = None, **kwargs) -> Pipeline:
        """Open every component of ``layout``; errors name the file and what was expected."""
        check_layout(layout)
        options = options or RuntimeOptions()
        time_embeddings = None
        if layout.time_input_txt2img is not None:
            time_embeddings = _load_npy(layout.time_input_txt2img)
        try:
            return cls._open(layout, options, time_embeddings, **kwargs)
        except TimeInputMissing as exc:
            message = missing_time_input_message(layout, layout.unet, exc.input_name)
            raise ModelError(message, exc.problems) from exc

    @classmethod
    def _open(
        cls, layout: ModelLayout, options: RuntimeOptions, time_embeddings: np.ndarray | None, **kwargs
    ) -> Pipeline:
        unet, shallow = layout.unet, None
        if kwargs.get("deep_cache", DEEP_CACHE_OFF) != DEEP_CACHE_OFF:  # the pair instead of unet.onnx
            unet, shallow = deepcache.pair_paths(layout.unet_deep, layout.unet_shallow, layout.root)
        tokenizer = ClipTokenizer(layout.tokenizer_dir)  # its errors first: it is the quickest check
        sessions = open_sessions(
            {  # the contract's component names are also this class's parameter names
                TEXT_ENCODER: layout.text_encoder,
                UNET: unet,
                UNET_SHALLOW: shallow,
                VAE_DECODER: layout.vae_decoder,
                VAE_ENCODER: layout.vae_encoder,
                VAE_DECODER_TINY: layout.vae_decoder_tiny,
                VAE_ENCODER_TINY: layout.vae_encoder_tiny,
            },
            options,
        )
        return cls(
            tokenizer=tokenizer,
            **sessions,
            tiny_vae_scaling_factor=layout.tiny_vae_scaling_factor,
            time_embeddings=time_embeddings,
            timesteps=layout.timesteps,
            vae_scaling_factor=layout.vae_scaling_factor,
            model_name=layout.name,
            **{**_layout_extras(layout), **kwargs},
        )

    def release_sessions(self) -> None:
        """Drop every session (an NPU frees its copy of the model) before :meth:`take_state_of`."""
        for name in self.sessions:
            setattr(self, name, None)

    def take_state_of(self, other: Pipeline) -> None:
        """Take the state of ``other``, the same model reopened, so holders of this object use it."""
        vars(self).update(vars(other))

    def _guidance_feed(self, width: int | None) -> np.ndarray | None:
        spec = self._unet_sig.guidance
        if spec is None or width is None:  # the checks made sure a guidance input has a width
            return None
        return guidance_embedding(self.guidance_scale, width).reshape((*spec.fixed_shape()[:-1], width))

    @property
    def supports_img2img(self) -> bool:
        return self.vae_encoder is not None

    @property
    def sessions(self) -> dict[str, Session]:
        found = {TEXT_ENCODER: self.text_encoder, UNET: self.unet, VAE_DECODER: self.vae_decoder}
        if self.vae_encoder is not None:
            found[VAE_ENCODER] = self.vae_encoder
        if self.vae_decoder_tiny is not None:
            found[VAE_DECODER_TINY] = self.vae_decoder_tiny
        if self.vae_encoder_tiny is not None:
            found[VAE_ENCODER_TINY] = self.vae_encoder_tiny
        if self.unet_shallow is not None:
            found[UNET_SHALLOW] = self.unet_shallow
        return found

    def prepare_image(self, image: Image.Image, resize_mode: int = 0) -> np.ndarray:
        """A decoded RGB init image at the model's size (A1111 resize modes) -> NCHW [-1, 1]."""
        return to_model_input(resize_image(image, self.width, self.height, resize_mode))

    @property
    def vae_choices(self) -> tuple[str, ...]:
        return VAE_CHOICES if self.vae_decoder_tiny is not None else (DEFAULT_VAE,)

    # ---- stages ------------------------------------------------------------------------------

    def encode_prompt(self, prompt: str) -> np.ndarray:
        """CLIP text embeddings [1,77,768] of a literal text, truncated at 75 tokens."""
        return self._encode_ids(self.tokenizer.encode(prompt))

    def _encode_ids(self, ids: np.ndarray | tuple[int, ...]) -> np.ndarray:
        """One chunk's text-encoder output [1,77,D], cached by its token ids (LRU)."""
        ids = np.asarray(ids, dtype=np.int64)
        key = tuple(int(i) for i in ids)
        with self._cache_lock:
            cached = self._text_cache.get(key)
            if cached is not None:
                self._text_cache.move_to_end(key)
                return cached
        (hidden,) = self.text_encoder.run({self._text_input: ids[None, :]}, [self._text_output])
        hidden = hidden.astype(np.float32)
        with self._cache_lock:
            self._text_cache[key] = hidden
            while len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        return hidden

    def read_prompts(self, params: GenerationParams, steps: int) -> tuple[ReadPrompt, ReadPrompt | None]:
        """The prompt (and, with guidance, the negative prompt) read for ``steps`` steps, cut to the
        chunks this model takes. Cheap (no model runs): callers may read before queueing."""
        read = self.prompt_reader.read
        options = {"syntax": params.prompt_syntax, "max_chunks": self.context_chunks}
        prompt = read(params.prompt, steps, **options)
        negative = read(params.negative_prompt, steps, **options) if params.guided else None
        return prompt, negative

    def _conditioning(self, read: ReadPrompt, steps: int) -> list[np.ndarray]:
        """The UNet's encoder_hidden_states for each step [1, 77*k, D]: each distinct chunk encoded
        once (the LRU cache spans requests), weighted, and the chunks joined."""
        joined: dict[tuple[Chunk, ...], np.ndarray] = {}
        for _, chunks in read.entries:
            if chunks not in joined:
                parts = [apply_emphasis(self._encode_ids(c.ids), np.asarray(c.weights)) for c in chunks]
                joined[chunks] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return [joined[read.chunks_at(step)] for step in range(1, steps + 1)]

    def _inpainting_condition(self, params: GenerationParams, posterior: NoiseFn) -> np.ndarray:
        """A 9-channel UNet's extra input [1, 5, h, w]: the mask, then the latent of the image with
        the masked area blanked (diffusers' StableDiffusionInpaintPipeline). Without a mask (txt2img,
        plain img2img) the whole image may change: a mask of ones over a blank (mid-grey) image."""
        if params.mask is not None and params.init_image is not None:
            mask = params.mask
            pixels = params.mask_pixels
            if pixels is None:
                pixels = np.repeat(np.repeat(mask, VAE_FACTOR, axis=2), VAE_FACTOR, axis=3)
            masked = params.init_image.astype(np.float32) * (pixels < 0.5)
            masked_latent = self.encode_image(masked.astype(np.float32), posterior, params.vae)
        else:
            mask = np.ones((1, 1, *self.latent_shape[2:]), np.float32)
            blank = np.zeros((1, 3, self.height, self.width), np.float32)
            masked_latent = self.encode_image(blank, lambda shape: np.zeros(shape, np.float32), params.vae)
        return np.concatenate([mask.astype(np.float32), masked_latent], axis=1)

    def _time_feed(self, t: int, batch: int = 1) -> np.ndarray:
        sig = self._unet_sig
        if self._time_rows is not None:
            row = self._time_rows[self.timesteps.index(t)]
            feed = row.reshape(sig.time.fixed_shape())
        else:
            feed = np.full(sig.time.fixed_shape(), t)
        return _batched(feed, batch)

    def predict_noise(
        self,
        latent: np.ndarray,
        t: int,
        hidden: np.ndarray,
        step: int = 0,
        branch: str = "prompt",
        condition: np.ndarray | None = None,
    ) -> np.ndarray:
        """The UNet's noise prediction; ``step`` (0-based in the generation) picks, with DeepCache on,
        the full UNet (keeping its deep feature for ``branch``) or the shallow path on the kept one.
        ``condition``: a 9-channel inpainting UNet's mask and masked-image latent [1, 5, h, w]."""
        sig = self._unet_sig
        batch = latent.shape[0]
        if condition is not None:
            latent = np.concatenate([latent, _batched(condition, batch)], axis=1)
        feeds = {sig.sample.name: latent, sig.hidden.name: hidden, sig.time.name: self._time_feed(t, batch)}
        if sig.guidance is not None:
            feeds[sig.guidance.name] = _batched(self._guidance, batch)
        kept = self._deep_feature.get(branch)
        if self.unet_shallow is None:
            (eps,) = self.unet.run(feeds, [self._unet_output])
        elif deepcache.reuses_step(step, self.deep_cache) and kept is not None:
            feeds[DEEP_FEATURE] = kept
            (eps,) = self.unet_shallow.run(feeds, [self.unet_shallow.output_names[0]])
        else:
            eps, self._deep_feature[branch] = self.unet.run(feeds, [self._unet_output, DEEP_FEATURE])
        return eps.astype(np.float32)

    def guided_noise(
        self,
        latent: np.ndarray,
        t: int,
        hidden: np.ndarray,
        negative: np.ndarray | None,
        cfg_scale: float,
        step: int = 0,
        condition: np.ndarray | None = None,
    ) -> np.ndarray:
        """Classifier-free guidance: eps(negative) + scale * (eps(prompt) - eps(negative)), as diffusers
        and A1111 combine them. Both in one batch-2 run where the UNet allows it and the two contexts
        have the same length; else two runs. Without ``negative``: the prompt's prediction alone."""
        if negative is None:
            return self.predict_noise(latent, t, hidden, step, condition=condition)
        if self.unet_batches and negative.shape == hidden.shape:
            pair, contexts = np.concatenate([latent, latent]), np.concatenate([negative, hidden])
            both = self.predict_noise(pair, t, contexts, step, "both", condition)
            eps_negative, eps_prompt = both[:1], both[1:]
        else:
            eps_negative = self.predict_noise(latent, t, negative, step, "negative", condition)
            eps_prompt = self.predict_noise(latent, t, hidden, step, "prompt", condition)
        return eps_negative + np.float32(cfg_scale) * (eps_prompt - eps_negative)

    def encode_image(self, image: np.ndarray, noise: NoiseFn, vae: str = "full") -> np.ndarray:
        """VAE-encode an NCHW [-1,1] image to a scaled latent sample. ``vae="tiny"`` uses the TAESD
        encoder where the folder has one (deterministic: no posterior draw), else the full one."""
        if vae == "tiny" and self.vae_encoder_tiny is not None:
            (latent,) = self.vae_encoder_tiny.run({self.vae_encoder_tiny.inputs[0].name: image})
            return (latent.astype(np.float32) * self.tiny_vae_scaling_factor).astype(np.float32)
        if self.vae_encoder is None:
            raise InvalidInput("img2img needs vae_encoder.onnx/.axmodel in the model folder")
        (moments,) = self.vae_encoder.run({self.vae_encoder.inputs[0].name: image})
        if moments.shape[1] == self.latent_shape[1]:  # the graph returns a sampled latent already
            return (moments.astype(np.float32) * self.vae_scaling_factor).astype(np.float32)
        mean, logvar = np.split(moments.astype(np.float32), 2, axis=1)
        std = np.exp(0.5 * np.clip(logvar, -30.0, 20.0))
        return ((mean + std * noise(mean.shape)) * self.vae_scaling_factor).astype(np.float32)

    def _decoder_for(self, vae: str) -> tuple[Session, float]:
        if vae == "full":
            return self.vae_decoder, self.vae_scaling_factor
        if vae == "tiny":
            if self.vae_decoder_tiny is None:
                raise InvalidInput("this model folder has no tiny VAE decoder (vae_decoder_tiny.onnx)")
            return self.vae_decoder_tiny, self.tiny_vae_scaling_factor
        raise InvalidInput(f"vae must be {' or '.join(map(repr, VAE_CHOICES))}, not {vae!r}")

    def decode_latent(self, latent: np.ndarray, vae: str = "full") -> np.ndarray:
        """Latent -> HWC uint8 RGB with the full or the tiny (TAESD) decoder, converted as diffusers does."""
        decoder, scaling = self._decoder_for(vae)
        (image,) = decoder.run({decoder.inputs[0].name: latent / scaling})
        return from_model_output(image)

    # ---- the loop ----------------------------------------------------------------------------

    def generate(
        self,
        params: GenerationParams,
        *,
        noise: NoiseFn | None = None,
        on_step: StepCallback | None = None,
        on_latent: LatentCallback | None = None,
    ) -> GenerationResult:
        """Run txt2img (no init image) or img2img. ``on_step(done, total)`` is called before each
        UNet step and after the last; raising from it (e.g. :class:`Cancelled`) stops the job there.
        Noise is drawn in diffusers' order: initial latent (img2img: posterior sample, then the
        added noise), then one draw per intermediate step. A given ``noise`` supplies every draw.
        ``on_latent(done, total, denoised)`` sees each step's denoised estimate (live previews)."""

        start = time.perf_counter()
        timings = StageTimings()
        if noise is None:
            noise = seeded_noise(params.seed, params.randn_source)
            posterior = posterior_noise(params.randn_source, noise)
        else:
            posterior = noise
        self._decoder_for(params.vae)  # reject an unavailable decoder before any work
        if params.init_image is None:
            timesteps = self.timesteps
        else:
            timesteps = img2img_timesteps(params.strength, self.timesteps)
            expected = (1, 3, self.height, self.width)
            if tuple(params.init_image.shape) != expected:
                raise InvalidInput(
                    f"init image must be {list(expected)} NCHW, got {list(params.init_image.shape)}"
                )
        if params.mask is not None:
            if params.init_image is None:
                raise InvalidInput("a mask needs an init image (img2img): it says which part of it to change")
            want = (1, 1, *self.latent_shape[2:])
            if tuple(params.mask.shape) != want:
                raise InvalidInput(
                    f"mask must be {list(want)} (the latent's size), got {list(params.mask.shape)}"
                )

        total = len(timesteps)
        t0 = time.perf_counter()
        prompt, negative = self.read_prompts(params, total)
        hidden = self._conditioning(prompt, total)
        unconditional = self._conditioning(negative, total) if negative is not None else None
        timings.text_ms = _ms_since(t0)
        warnings = prompt.warnings("prompt") + (negative.warnings("negative prompt") if negative else [])

        keep = None  # inpainting: (1 - mask, the clean init latent, its first noise)
        if params.init_image is None:
            latent = noise(self.latent_shape)
        else:
            t0 = time.perf_counter()
            clean = self.encode_image(params.init_image.astype(np.float32), posterior, params.vae)
            timings.vae_encode_ms = _ms_since(t0)
            first = noise(clean.shape)
            initial = clean
            if params.mask is not None:
                keep = (1.0 - params.mask, clean, first)
                if params.masked_content == "latent noise":  # the masked area starts from noise
                    initial = clean * keep[0] + noise(clean.shape) * params.mask
                elif params.masked_content == "latent nothing":  # ... from a zero latent
                    initial = clean * keep[0]
            latent = self.scheduler.add_noise(
                initial, first * np.float32(params.noise_multiplier), timesteps[0]
            )

        condition = self._inpainting_condition(params, posterior) if self.inpainting_unet else None
        for i, t in enumerate(timesteps):
            if on_step:
                on_step(i, total)
            t0 = time.perf_counter()
            negative_i = unconditional[i] if unconditional is not None else None
            eps = self.guided_noise(latent, t, hidden[i], negative_i, params.cfg_scale, i, condition)
            denoised = self.scheduler.denoise(latent, eps, t)
            if i + 1 < total:
                latent = self.scheduler.renoise(denoised, noise(denoised.shape), timesteps[i + 1])
            else:
                latent = denoised
            # outside the mask: the init latent at the level the next step expects (an inpainting
            # UNet is given the masked image instead, as in diffusers)
            if keep is not None and not self.inpainting_unet:
                outside, clean, first = keep
                known = self.scheduler.add_noise(clean, first, timesteps[i + 1]) if i + 1 < total else clean
                latent = (known * outside + latent * (1.0 - outside)).astype(np.float32)
            timings.unet_ms.append(_ms_since(t0))
            if on_latent:
                on_latent(i + 1, total, denoised)
        if on_step:
            on_step(total, total)
        self._deep_feature = {}  # step 0 of the next image runs the full UNet anyway

        t0 = time.perf_counter()
        pixels = self.decode_latent(latent, params.vae)
        timings.vae_decode_ms = _ms_since(t0)
        timings.total_ms = _ms_since(start)
        return GenerationResult(
            pixels=pixels,
            params=params,
            timesteps=tuple(timesteps),
            timings=timings,
            model_name=self.model_name,
            deep_cache=self.deep_cache,
            warnings=tuple(warnings),
        )


def _batched(feed: np.ndarray | None, batch: int) -> np.ndarray | None:
    """A batch-1 feed repeated for a batch of ``batch`` (guidance runs prompt and negative together)."""
    if feed is None or batch == 1:
        return feed
    return np.repeat(feed, batch, axis=0)


def _layout_extras(layout: ModelLayout) -> dict[str, object]:
    """Pipeline settings a diffusers-layout model's configs carry (see engine.layout_diffusers)."""
    facts = layout.manifest
    extras: dict[str, object] = {}
    if isinstance(facts.get("sample_size"), int):
        extras["latent_size"] = facts["sample_size"]
    if facts.get("guidance_scale") is not None:
        extras["guidance_scale"] = float(facts["guidance_scale"])
    if isinstance(facts.get("time_cond_proj_dim"), int):
        extras["guidance_dim"] = facts["time_cond_proj_dim"]
    return extras


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable .npy array: {exc}") from exc
