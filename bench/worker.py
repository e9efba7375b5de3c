"""One benchmark configuration in its own process (clean peak memory): prints one JSON line.

Configurations:
  engine:<runtime>[:<precision>][:int8[:floatdec]|:int8unet][:tiny][:deepcache[N]]
                                          this project's Pipeline (ORT / OpenVINO): FP32/BF16, every INT8
                                          variant the folder has (UNet, VAE decoder, VAE encoder), all but
                                          the decoder, or only the UNet; full or TAESD VAE, DeepCache
                                          reuse (interval N, default 2: full, reuse, full, reuse) or not
  bare-openvino                           OpenVINO compiled models driven by a minimal numpy loop
  torch                                   diffusers StableDiffusion(Img2Img)Pipeline + LCMScheduler, FP32 CPU
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

TIMESTEPS = [999, 759, 499, 259]
PROMPT = "a photograph of a red fox in the snow, highly detailed"


def _init_image(size: int) -> np.ndarray:
    rng = np.random.default_rng(123)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    img = ramp[None, :, None] * np.ones((size, 1, 3), np.float32) + rng.normal(0, 25, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). Not ru_maxrss: on Linux that keeps the parent's
    high-water mark across fork + exec, so every worker would report at least the parent's size."""
    return (
        _rss_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    )  # not Linux: best effort


class Timer:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds * 1000.0


# ---- this project's engine -------------------------------------------------------------------


def run_engine(model_dir: Path, spec: str, mode: str, runs: int, out: Path) -> dict:
    from PIL import Image

    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
    from pi_axera_sd.runtime import RuntimeOptions

    parts = spec.split(":")[1:]
    runtime = parts[0]
    precision = next((p for p in parts[1:] if p in ("f32", "bf16")), None)
    vae = "tiny" if "tiny" in parts else "full"
    variant = "int8" if {"int8", "int8unet"} & set(parts) else None
    t0 = time.perf_counter()
    # int8unet: only the UNet in INT8 (quantize --components unet); floatdec: every INT8 variant but
    # the VAE decoder, which runs in the runtime's float precision (BF16 here)
    float_parts = {"int8unet": ("vae_decoder", "vae_encoder"), "floatdec": ("vae_decoder",)}
    overrides = {name: model_dir / f"{name}.onnx" for part in parts for name in float_parts.get(part, ())}
    layout = resolve_layout(model_dir, variant=variant, overrides=overrides)
    deep_cache = deepcache_interval(spec)
    pipe = Pipeline.load(layout, RuntimeOptions(runtime=runtime, precision=precision), deep_cache=deep_cache)
    load_s = time.perf_counter() - t0
    rss_after_load = _rss_mb()
    init = None
    if mode == "img2img":
        init = pipe.prepare_image(Image.fromarray(_init_image(pipe.width)), 0)
    in_runtime = _time_session_calls(pipe)
    samples, last = [], None
    for i in range(runs + 1):  # first run warms up
        in_runtime[0] = 0.0
        t0 = time.perf_counter()
        result = pipe.generate(GenerationParams(PROMPT, seed=0, init_image=init, strength=0.5, vae=vae))
        wall = (time.perf_counter() - t0) * 1000.0
        if i:
            t = result.timings
            stages = {
                "text": t.text_ms,
                "vae_encode": t.vae_encode_ms,
                "unet": sum(t.unet_ms),
                "vae_decode": t.vae_decode_ms,
            }
            # engine overhead: everything that is not inside a runtime call
            samples.append({"total_ms": wall, "stages": stages, "overhead_ms": wall - in_runtime[0]})
        last = result.pixels
        pipe._text_cache.clear()  # time the text encoder every run, as a new prompt would
    np.save(out, last)
    _save_unet_probe(pipe, out.with_suffix(".unet.npy"))
    return {
        "load_s": load_s,
        "samples": samples,
        "provider": pipe.unet.provider,
        "rss_after_load_mb": rss_after_load,
    }


def deepcache_interval(config: str) -> int:
    """``...:deepcache`` -> 2, ``...:deepcache4`` -> 4, no such part -> 0 (off)."""
    part = next((p for p in config.split(":") if p.startswith("deepcache")), None)
    return 0 if part is None else int(part.removeprefix("deepcache") or 2)


def _time_session_calls(pipe) -> list[float]:
    """Wrap every session's run() to add its wall time (ms) to a shared counter."""
    total = [0.0]
    for session in pipe.sessions.values():
        original = session.run

        def timed(*a, _run=original, **k):
            t = time.perf_counter()
            try:
                return _run(*a, **k)
            finally:
                total[0] += (time.perf_counter() - t) * 1000.0

        session.run = timed
    return total


def _probe_inputs(hidden_width: int = 768, latent: int = 64):
    rng = np.random.default_rng(5)
    return (
        rng.standard_normal((1, 4, latent, latent), dtype=np.float32),
        rng.standard_normal((1, 77, hidden_width), dtype=np.float32),
    )


def _save_unet_probe(pipe, path: Path) -> None:
    """UNet output on fixed inputs at t=499: the reference for relative-error reporting."""
    hidden_width = next(s.shape[-1] for s in pipe.unet.inputs if len(s.shape) == 3)
    sample, hidden = _probe_inputs(hidden_width, pipe.latent_shape[2])
    np.save(path, pipe.predict_noise(sample, 499, hidden))


# ---- a bare OpenVINO loop (the peer FastSD CPU users would write) -----------------------------


def run_bare_openvino(model_dir: Path, mode: str, runs: int, out: Path) -> dict:
    import openvino as ov

    from pi_axera_sd.engine.tokenizer import ClipTokenizer

    core = ov.Core()
    t0 = time.perf_counter()
    cfg = {"PERFORMANCE_HINT": "LATENCY"}
    text = core.compile_model(str(model_dir / "text_encoder" / "sd15_text_encoder_sim.onnx"), "CPU", cfg)
    unet = core.compile_model(str(model_dir / "unet.onnx"), "CPU", cfg)
    dec = core.compile_model(str(model_dir / "vae_decoder.onnx"), "CPU", cfg)
    enc = core.compile_model(str(model_dir / "vae_encoder.onnx"), "CPU", cfg) if mode == "img2img" else None
    load_s = time.perf_counter() - t0
    rss_after_load = _rss_mb()
    precision = unet.get_property("INFERENCE_PRECISION_HINT").to_string()
    tok = ClipTokenizer(model_dir / "tokenizer")
    temb = np.load(model_dir / "time_input_txt2img.npy")
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float32) ** 2
    ac = np.cumprod(1 - betas)
    samples, image = [], None
    for i in range(runs + 1):
        timer = Timer()
        rng = np.random.default_rng(0)  # same draws, in the same order, as the engine's seed 0

        def noise(shape, rng=rng):
            return rng.standard_normal(shape, dtype=np.float32)

        start = time.perf_counter()
        latent_size = unet.inputs[0].get_partial_shape()[2].get_length()
        t = time.perf_counter()
        hidden = text(tok.encode(PROMPT)[None])[0]
        timer.add("text", time.perf_counter() - t)
        steps = TIMESTEPS
        if mode == "img2img":
            steps = TIMESTEPS[2:]
            t = time.perf_counter()
            x = _init_image(latent_size * 8).astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
            mom = enc(x)[0]
            mean, logvar = np.split(mom, 2, axis=1)
            lat = (mean + np.exp(0.5 * np.clip(logvar, -30, 20)) * noise(mean.shape)) * 0.18215
            timer.add("vae_encode", time.perf_counter() - t)
            a = ac[steps[0]]
            lat = math.sqrt(a) * lat + math.sqrt(1 - a) * noise(lat.shape)
        else:
            lat = noise((1, 4, latent_size, latent_size))
        t = time.perf_counter()
        for j, ts in enumerate(steps):
            eps = unet([lat.astype(np.float32), temb[TIMESTEPS.index(ts)][None], hidden])[0]
            a = ac[ts]
            s = ts * 10.0
            x0 = (lat - math.sqrt(1 - a) * eps) / math.sqrt(a)
            den = s / math.sqrt(s * s + 0.25) * x0 + 0.25 / (s * s + 0.25) * lat
            if j + 1 < len(steps):
                an = ac[steps[j + 1]]
                lat = math.sqrt(an) * den + math.sqrt(1 - an) * noise(den.shape)
            else:
                lat = den
        timer.add("unet", time.perf_counter() - t)
        t = time.perf_counter()
        img = dec([(lat / 0.18215).astype(np.float32)])[0]
        image = (np.clip(img[0] / 2 + 0.5, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
        timer.add("vae_decode", time.perf_counter() - t)
        if i:
            samples.append({"total_ms": (time.perf_counter() - start) * 1000.0, "stages": timer.stages})
    np.save(out, image)
    return {
        "load_s": load_s,
        "samples": samples,
        "provider": f"openvino/CPU/{precision} (its default)",
        "rss_after_load_mb": rss_after_load,
    }


# ---- diffusers + PyTorch ---------------------------------------------------------------------


def run_torch(base: Path, mode: str, runs: int, out: Path) -> dict:
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
    from PIL import Image

    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(
        str(base / "diffusers"), safety_checker=None, requires_safety_checker=False
    )
    if mode == "img2img":
        pipe = StableDiffusionImg2ImgPipeline(**pipe.components)
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - t0
    rss_after_load = _rss_mb()
    timer = Timer()

    def timed(module, name):
        original = module.forward

        def wrapper(*a, **k):
            t = time.perf_counter()
            r = original(*a, **k)
            timer.add(name, time.perf_counter() - t)
            return r

        module.forward = wrapper

    timed(pipe.text_encoder, "text")
    timed(pipe.unet, "unet")
    timed(pipe.vae.decoder, "vae_decode")
    timed(pipe.vae.encoder, "vae_encode")
    kwargs = {"prompt": PROMPT, "timesteps": TIMESTEPS, "guidance_scale": 1.0, "output_type": "np"}
    if mode == "img2img":
        kwargs.update(image=Image.fromarray(_init_image(pipe.unet.config.sample_size * 8)), strength=0.5)
    samples, image = [], None
    for i in range(runs + 1):
        timer.stages.clear()
        t0 = time.perf_counter()
        image = pipe(generator=torch.Generator().manual_seed(0), **kwargs).images[0]
        if i:
            samples.append({"total_ms": (time.perf_counter() - t0) * 1000.0, "stages": dict(timer.stages)})
    np.save(out, (image * 255).round().astype(np.uint8))
    return {
        "load_s": load_s,
        "samples": samples,
        "provider": f"torch {torch.__version__} CPU fp32",
        "rss_after_load_mb": rss_after_load,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--mode", choices=["txt2img", "img2img"], default="txt2img")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True, help="where to save the last image (.npy)")
    args = ap.parse_args()
    if args.config.startswith("engine:"):
        result = run_engine(args.base / "axera", args.config, args.mode, args.runs, args.out)
    elif args.config == "bare-openvino":
        result = run_bare_openvino(args.base / "axera", args.mode, args.runs, args.out)
    elif args.config == "torch":
        result = run_torch(args.base, args.mode, args.runs, args.out)
    else:
        raise SystemExit(f"unknown config {args.config}")
    totals = [s["total_ms"] for s in result["samples"]]
    result.update(
        config=args.config, mode=args.mode, median_ms=statistics.median(totals), peak_rss_mb=_peak_rss_mb()
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
