"""The pi-axera-sd command: serve, generate, models (export, pull, verify...), interrogate, systemd."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from pi_axera_sd import __version__
from pi_axera_sd.defaults import A1111_STRENGTH, VAE_CHOICES
from pi_axera_sd.errors import PiAxeraError

Handler = Callable[[argparse.Namespace], int]


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line (the setting contract), not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override the environment's model/runtime settings (see pi_axera_sd.config).
    Values are checked by Settings, so a bad one gets the same message as in the environment."""
    p.add_argument(
        "--models", dest="models_dir", type=Path, help="model folder (env MODELS_DIR, default ./models)"
    )
    p.add_argument(
        "--runtime", metavar="{auto,onnxruntime,axengine,openvino}", help="session runtime (default auto)"
    )
    p.add_argument("--device", metavar="{cpu,cuda}", help="ONNX Runtime device")
    p.add_argument("--threads", help="CPU threads per session (0 = runtime default)")
    p.add_argument("--ax-provider", metavar="{AxEngineExecutionProvider,AXCLRTExecutionProvider}")


def settings_from_args(args: argparse.Namespace, **extra):
    """Environment settings with every flag the user gave taking precedence.

    A bad value raises pydantic's ``ValidationError``; :func:`main` prints it as one line per
    setting (variable and flag named) and exits 2.
    """
    from pi_axera_sd.config import Settings

    fields = Settings.model_fields
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    given.update({k: v for k, v in extra.items() if v is not None})
    return Settings(**given)


def cmd_generate(args: argparse.Namespace) -> int:
    from pi_axera_sd.engine.imageio import decode_image_bytes, encode_png
    from pi_axera_sd.engine.infotext import result_infotext
    from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline, resolve_seed

    settings = settings_from_args(args)
    pipeline = Pipeline.load(settings.model_layout(), settings.runtime_options())
    init = None
    if args.init_image:
        image = decode_image_bytes(Path(args.init_image).read_bytes(), settings.image_limits())
        init = pipeline.prepare_image(image, args.resize_mode)
    seed = resolve_seed(args.seed)
    vae = args.vae or settings.vae
    params = GenerationParams(
        args.prompt, seed, init, args.strength, vae=vae, randn_source=settings.randn_source
    )
    result = pipeline.generate(params)
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


def cmd_models_export(args: argparse.Namespace) -> int:
    from pi_axera_sd.modeltools.export_sd import export_model

    manifest = export_model(
        args.source,
        args.out,
        lora=args.lora,
        lora_scale=args.lora_scale,
        name=args.name,
        unet_time_input=args.unet_time_input,
        tiny_vae=args.tiny_vae,
    )
    print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=2))
    print(f"wrote {len(manifest['files'])} files to {args.out}")
    return 0


def cmd_models_tiny(args: argparse.Namespace) -> int:
    from pi_axera_sd.modeltools.export_sd import export_pipeline
    from pi_axera_sd.modeltools.tiny import build_sd_pipeline, build_taesd

    logging.getLogger(__name__).info("random: building %s weights...", args.size)
    pipe = build_sd_pipeline(args.size, seed=args.seed)
    export_pipeline(
        pipe,
        args.out,
        name=f"random-{args.size}-sd15",
        source=f"random {args.size} weights",
        tiny_vae=build_taesd(args.size, seed=args.seed),
        tiny_vae_source=f"random {args.size} TAESD weights",
    )
    print(f"wrote a {args.size} SD1.5-shaped model with random weights to {args.out}")
    return 0


def cmd_models_quantize(args: argparse.Namespace) -> int:
    from pi_axera_sd.modeltools.quantize import quantize_model

    info = quantize_model(args.model_dir, components=args.components)
    print(json.dumps(info, indent=2))
    print("use it with PI_AXERA_SD_VARIANT=int8 (OpenVINO runtime)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pi-axera-sd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pi-axera-sd {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="make one image (txt2img, or img2img with --init-image)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--init-image", help="PNG/JPEG/WebP file for img2img")
    gen.add_argument(
        "--strength", type=float, default=A1111_STRENGTH, help="img2img denoising strength (0-1)"
    )
    gen.add_argument("--resize-mode", type=int, default=0, choices=[0, 1, 2, 3], help="A1111 resize mode")
    gen.add_argument("--seed", type=int, default=-1, help="-1 = random (printed)")
    gen.add_argument("--vae", choices=VAE_CHOICES, help="VAE decoder (tiny = TAESD, if the model has one)")
    gen.add_argument("-o", "--output", default="out.png")
    _add_engine_flags(gen)
    gen.set_defaults(func=cmd_generate)

    models = sub.add_parser("models", help="export, pull and check model folders")
    msub = models.add_subparsers(dest="models_command", required=True)
    exp = msub.add_parser(
        "export", help="diffusers SD1.5 (+LCM-LoRA) -> AXERA ONNX layout (needs [export] extra)"
    )
    exp.add_argument("source", help="diffusers model folder or hub id (HF_ENDPOINT honoured)")
    exp.add_argument("out", type=Path, help="output model folder")
    exp.add_argument("--lora", help="LoRA (e.g. latent-consistency/lcm-lora-sdv1-5) fused into the UNet")
    exp.add_argument("--lora-scale", type=float, default=1.0)
    exp.add_argument("--name", help="model name reported by the API (default: folder name)")
    exp.add_argument(
        "--unet-time-input",
        choices=["embedding", "timestep"],
        default="embedding",
        help="embedding: AXERA's cut UNet + time_input_*.npy; timestep: plain UNet",
    )
    exp.add_argument(
        "--tiny-vae",
        help="also export a TAESD decoder (AutoencoderTiny folder or hub id, "
        "e.g. madebyollin/taesd) as vae_decoder_tiny.onnx",
    )
    exp.set_defaults(func=cmd_models_export)
    tiny = msub.add_parser(
        "random", help="export an SD1.5-shaped model with random weights (tests, benchmarks)"
    )
    tiny.add_argument("out", type=Path)
    tiny.add_argument("--size", choices=["tiny", "full"], default="tiny")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=cmd_models_tiny)

    quant = msub.add_parser(
        "quantize", help="write INT8 OpenVINO variants of the UNet / VAE decoder (needs openvino + nncf)"
    )
    quant.add_argument("model_dir", type=Path)
    quant.add_argument(
        "--components", nargs="+", choices=["unet", "vae_decoder"], default=["unet", "vae_decoder"]
    )
    quant.set_defaults(func=cmd_models_quantize)

    for register in _plugins():
        register(sub, msub)
    return parser


def _plugins() -> list[Callable]:
    """Sub-commands that live with their own concern (server, interrogation, model hub)."""
    from pi_axera_sd.deploy.cli import register as deploy
    from pi_axera_sd.interrogate.cli import register as interrogation
    from pi_axera_sd.loadtest.cli import register as loadtest
    from pi_axera_sd.modeltools.cli import register as model_hub
    from pi_axera_sd.server.cli import register as server

    return [server, interrogation, model_hub, loadtest, deploy]


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from pi_axera_sd import exitcodes
    from pi_axera_sd.settings_errors import missing_extra_line, validation_lines

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:  # a setting from the environment or a flag
        print("\n".join(validation_lines(exc)), file=sys.stderr)
        return exitcodes.CONFIG
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return exitcodes.CONFIG
    except ModuleNotFoundError as exc:  # an optional extra that is not installed
        line = missing_extra_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return exitcodes.CONFIG
    except PiAxeraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", exitcodes.CONFIG))  # e.g. 75 for an NPU that is not up yet


if __name__ == "__main__":
    raise SystemExit(main())
