"""``pi-axera-sd generate``: one image from the command line, no server."""

from __future__ import annotations

import argparse
from pathlib import Path

from pi_axera_sd.cli.common import add_engine_flags, settings_from_args
from pi_axera_sd.defaults import A1111_STRENGTH, VAE_CHOICES
from pi_axera_sd.wiring import image_limits, model_layout, pipeline_options, runtime_options


def cmd_generate(args: argparse.Namespace) -> int:
    from pi_axera_sd.engine.cfg_policy import decide_cfg
    from pi_axera_sd.engine.imageio import decode_image_bytes, encode_png
    from pi_axera_sd.engine.infotext import result_infotext
    from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline, resolve_seed

    settings = settings_from_args(args)
    pipeline = Pipeline.load(model_layout(settings), runtime_options(settings), **pipeline_options(settings))
    init = None
    if args.init_image:
        image = decode_image_bytes(Path(args.init_image).read_bytes(), image_limits(settings))
        init = pipeline.prepare_image(image, args.resize_mode)
    seed = resolve_seed(args.seed)
    vae = args.vae or settings.vae
    # a --cfg-scale on the command line asks for guidance; the cfg setting turns it on as for serve
    cfg = decide_cfg(
        args.cfg_scale,
        args.negative_prompt,
        enabled=settings.cfg or args.cfg_scale is not None,
        max_scale=settings.max_cfg_scale,
    )
    params = GenerationParams(
        args.prompt,
        seed,
        init,
        args.strength,
        vae=vae,
        randn_source=settings.randn_source,
        negative_prompt=cfg.negative_prompt,
        cfg_scale=cfg.scale,
        prompt_syntax=settings.prompt_syntax,
    )
    result = pipeline.generate(params)
    for warning in (*cfg.warnings, *result.warnings):
        print(f"warning: {warning}")
    Path(args.output).write_bytes(encode_png(result.pixels, result_infotext(result)))
    print(f"seed: {result.seed}")
    print(f"steps: {len(result.timesteps)} (timesteps {list(result.timesteps)})")
    t = result.timings
    print(f"text encoder: {t.text_ms:.1f} ms")
    if init is not None:
        print(f"vae encoder: {t.vae_encode_ms:.1f} ms")
    for i, ms in enumerate(t.unet_ms, 1):
        print(f"unet step {i}: {ms:.1f} ms")
    print(f"vae decoder: {t.vae_decode_ms:.1f} ms")
    print(f"total: {t.total_ms:.1f} ms")
    print(f"wrote {args.output} ({pipeline.width}x{pipeline.height})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="make one image (txt2img, or img2img with --init-image)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default="", help="what to steer away from (needs --cfg-scale > 1)")
    gen.add_argument(
        "--cfg-scale",
        type=float,
        help="classifier-free guidance scale above 1: two UNet runs a step, capped at max_cfg_scale "
        "(default: none, LCM's CFG 1)",
    )
    gen.add_argument("--init-image", help="PNG/JPEG/WebP file for img2img")
    gen.add_argument(
        "--strength", type=float, default=A1111_STRENGTH, help="img2img denoising strength (0-1)"
    )
    gen.add_argument("--resize-mode", type=int, default=0, choices=[0, 1, 2, 3], help="A1111 resize mode")
    gen.add_argument("--seed", type=int, default=-1, help="-1 = random (printed)")
    gen.add_argument("--vae", choices=VAE_CHOICES, help="VAE decoder (tiny = TAESD, if the model has one)")
    gen.add_argument("-o", "--output", default="out.png")
    add_engine_flags(gen)
    gen.set_defaults(func=cmd_generate)
