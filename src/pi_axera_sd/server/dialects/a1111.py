"""AUTOMATIC1111 response shapes: generation ``info``, the echoed ``parameters``, options, progress.

Only what clients read is produced; values describe what this service really did (4 LCM steps,
CFG 1, the model's own size), not what was asked for.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pi_axera_sd.defaults import DEFAULT_RANDN_SOURCE, STRENGTH_BY_DIALECT
from pi_axera_sd.engine.infotext import VERSION
from pi_axera_sd.engine.noise import randn_source
from pi_axera_sd.server.core.lane import LaneStatus
from pi_axera_sd.server.core.live_preview import OPTION_DEFAULTS as PREVIEW_OPTIONS
from pi_axera_sd.server.core.modelinfo import ModelInfo
from pi_axera_sd.server.dialects.schemas import option_flag

SAMPLER = "LCM"

# A1111's txt2img fields and defaults, echoed back as ``parameters`` with the client's values.
TXT2IMG_DEFAULTS: dict[str, Any] = {
    "prompt": "",
    "negative_prompt": "",
    "styles": None,
    "seed": -1,
    "subseed": -1,
    "subseed_strength": 0,
    "seed_resize_from_h": -1,
    "seed_resize_from_w": -1,
    "sampler_name": None,
    "scheduler": None,
    "batch_size": 1,
    "n_iter": 1,
    "steps": 50,
    "cfg_scale": 7.0,
    "width": 512,
    "height": 512,
    "restore_faces": None,
    "tiling": None,
    "do_not_save_samples": False,
    "do_not_save_grid": False,
    "eta": None,
    "denoising_strength": None,
    "s_min_uncond": None,
    "s_churn": None,
    "s_tmax": None,
    "s_tmin": None,
    "s_noise": None,
    "override_settings": None,
    "override_settings_restore_afterwards": True,
    "refiner_checkpoint": None,
    "refiner_switch_at": None,
    "disable_extra_networks": False,
    "firstpass_image": None,
    "comments": None,
    "enable_hr": False,
    "firstphase_width": 0,
    "firstphase_height": 0,
    "hr_scale": 2.0,
    "hr_upscaler": None,
    "hr_second_pass_steps": 0,
    "hr_resize_x": 0,
    "hr_resize_y": 0,
    "hr_checkpoint_name": None,
    "hr_sampler_name": None,
    "hr_scheduler": None,
    "hr_prompt": "",
    "hr_negative_prompt": "",
    "force_task_id": None,
    "sampler_index": "Euler",
    "script_name": None,
    "script_args": [],
    "send_images": True,
    "save_images": False,
    "alwayson_scripts": {},
    "infotext": None,
}
IMG2IMG_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in TXT2IMG_DEFAULTS.items() if not k.startswith(("hr_", "enable_hr", "firstphase"))},
    "init_images": None,
    "resize_mode": 0,
    "image_cfg_scale": None,
    "mask": None,
    "mask_blur_x": 4,
    "mask_blur_y": 4,
    "mask_blur": None,
    "mask_round": True,
    "inpainting_fill": 0,
    "inpaint_full_res": True,
    "inpaint_full_res_padding": 0,
    "inpainting_mask_invert": 0,
    "initial_noise_multiplier": None,
    "latent_mask": None,
    "include_init_images": False,
    "denoising_strength": STRENGTH_BY_DIALECT["a1111"],
}


def echo_parameters(defaults: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """A1111 echoes its own fields (never a client's extra keys, which may hold its credentials);
    images come back only when ``include_init_images`` asks for them."""
    echoed = {key: body.get(key, default) for key, default in defaults.items()}
    if "init_images" in defaults and not body.get("include_init_images"):
        echoed["init_images"] = None
        echoed["mask"] = None
    return echoed


def job_timestamp(wall: float | None = None) -> str:
    return datetime.fromtimestamp(wall if wall is not None else time.time()).strftime("%Y%m%d%H%M%S")


def generation_info(
    *,
    model: ModelInfo,
    prompt: str,
    negative_prompt: str,
    base_seed: int,
    seeds: list[int],
    infotexts: list[str],
    steps: int,
    images_requested: int,
    denoising_strength: float | None,
    interrupted: bool,
    cfg_scale: float = 1.0,
    warnings: list[str] | None = None,
    styles: Any = None,
) -> dict[str, Any]:
    """``info`` (clients ``json.loads`` it). ``all_seeds`` and ``infotexts`` line up with ``images``."""
    count = len(seeds)
    return {
        "prompt": prompt,
        "all_prompts": [prompt] * count,
        "negative_prompt": negative_prompt,
        "all_negative_prompts": [negative_prompt] * count,
        "seed": base_seed,
        "all_seeds": seeds,
        "subseed": -1,
        "all_subseeds": [-1] * count,
        "subseed_strength": 0,
        "width": model.width,
        "height": model.height,
        "sampler_name": SAMPLER,
        "cfg_scale": cfg_scale,
        "steps": steps,
        "batch_size": images_requested,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": model.name,
        "sd_model_hash": model.hash,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": denoising_strength,
        "extra_generation_params": {},
        "index_of_first_image": 0,
        "infotexts": infotexts,
        "styles": styles if isinstance(styles, list) else [],
        "job_timestamp": job_timestamp(),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": VERSION,
        "interrupted": interrupted,
        # ours: what the model did not follow (a cut prompt, LoRA tags, guidance off), never silent
        "warnings": list(warnings or []),
    }


FLAG_OPTIONS = ("cfg", "prompt_syntax")  # change images, so a value that is not a flag is refused


MAX_OPTION_CHARS = 1024  # a stored option is read back by every client: no megabyte values


class OptionsStore:
    """``/sdapi/v1/options``. Clients read it to check the URL and post it back whole (Open WebUI)
    or with ``sd_model_checkpoint`` changed; there is one model, so the checkpoint keys always
    describe it. Other known keys are remembered so a client reads back what it wrote."""

    def __init__(
        self,
        save_images: bool,
        randn_source: str = DEFAULT_RANDN_SOURCE,
        *,
        cfg: bool = False,
        prompt_syntax: bool = True,
    ) -> None:
        self._values: dict[str, Any] = {
            "randn_source": randn_source,  # the service's default generator; requests may override
            # ours, from the settings of the same names; override_settings may set them per request
            "cfg": cfg,
            "prompt_syntax": prompt_syntax,
            "samples_save": save_images,
            "samples_format": "png",
            "save_images_add_number": True,
            "enable_pnginfo": True,
            "sd_vae": "Automatic",
            "sd_checkpoint_cache": 0,
            "sd_vae_checkpoint_cache": 0,
            "CLIP_stop_at_last_layers": 1,
            "eta_noise_seed_delta": 0,
            "img2img_fix_steps": False,
            **PREVIEW_OPTIONS,
            "show_progressbar": True,
            "interrogate_clip_num_beams": 1,
            "interrogate_return_ranks": True,
            "sd_lora": "None",
        }

    @property
    def randn_source(self) -> str:
        return str(self._values["randn_source"])

    @property
    def cfg(self) -> bool:
        return bool(self._values["cfg"])

    @property
    def prompt_syntax(self) -> bool:
        return bool(self._values["prompt_syntax"])

    def read(self, model: ModelInfo | None) -> dict[str, Any]:
        values = dict(self._values)
        values["sd_model_checkpoint"] = model.title if model else ""
        values["sd_checkpoint_hash"] = model.sha256 if model else ""
        return values

    def update(self, posted: Mapping[str, Any]) -> list[str]:
        """Apply known keys with plain, short values (the body is already normalised JSON, so each
        is serialisable); returns the keys that were not applied. An unknown ``randn_source`` is
        refused (InvalidInput) before anything is applied: it would change images."""
        if "randn_source" in posted:
            posted = {**posted, "randn_source": randn_source(posted["randn_source"])}
        for key in FLAG_OPTIONS:
            if key in posted:
                posted = {**posted, key: option_flag(key, posted[key])}
        ignored = []
        for key, value in posted.items():
            plain = value is None or isinstance(value, int | float | bool)
            plain = plain or (isinstance(value, str) and len(value) <= MAX_OPTION_CHARS)
            if key in self._values and plain:
                self._values[key] = value
            else:
                ignored.append(key)
        return ignored


def progress_body(status: LaneStatus) -> dict[str, Any]:
    """``/sdapi/v1/progress``: the running job's real step progress; ``job_count`` counts it and
    every queued job. Idle reads ``progress == 0`` and ``job_count == 0``, which SillyTavern waits for."""
    running = status.running
    progress = running.progress if running else 0.0
    eta = 0.0
    if running is not None:
        if progress > 0:
            eta = max(0.0, running.elapsed_s / progress - running.elapsed_s)
        elif status.mean_job_s is not None:
            eta = max(0.0, status.mean_job_s - running.elapsed_s)
    state = {
        "skipped": running.skipped if running else False,
        "interrupted": running.interrupted if running else False,
        "stopping_generation": False,
        "job": running.label if running else "",
        "job_count": status.job_count,
        "job_timestamp": job_timestamp(running.started_wall) if running else "0",
        "job_no": running.image_index if running else 0,
        "sampling_step": running.step if running else 0,
        "sampling_steps": running.steps if running else 0,
    }
    textinfo = None
    if running is not None:
        textinfo = f"{running.kind}: image {running.image_index + 1}/{running.image_count}"
        textinfo += f", step {running.step}/{running.steps}; {status.queued} queued"
    return {
        "progress": round(progress, 4),
        "eta_relative": round(eta, 3),
        "state": state,
        "current_image": None,
        "textinfo": textinfo,
        "current_task": running.job_id if running else None,
    }
