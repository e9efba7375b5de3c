"""``pi-axera-sd models ...``: export, random, quantize, pull and verify model folders."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from pi_axera_sd.cli.common import print_export
from pi_axera_sd.errors import PiAxeraError
from pi_axera_sd.wiring import model_layout, runtime_options

log = logging.getLogger(__name__)

PULL_EPILOG = """\
presets:
{presets}

The download goes to the Hugging Face cache (HF_HOME / HF_HUB_CACHE) and is resumed where a
connection drops; finished files are kept, so running the same command again continues. Files are
checked against the hub's checksums and the model's manifest.json, then the model folder found in
the repo (the one holding unet.axmodel or unet.onnx) is placed at --dest as hard links into the cache.

environment: HF_ENDPOINT (mirror), HF_TOKEN (gated/private repos), HF_HUB_OFFLINE=1 (cache only).

examples:
  pi-axera-sd models pull axera                     # NPU model into ./models
  pi-axera-sd models pull axera --dest /opt/models --revision <commit>
  pi-axera-sd models pull owner/variants --resolution 320x320   # one of several model folders
  HF_ENDPOINT=https://hf-mirror.com pi-axera-sd models pull AXERA-TECH/lcm-lora-sdv1-5
"""

VERIFY_EPILOG = """\
Each component's file is opened with the runtime the engine would use and its inputs/outputs are
compared with the SD1.5-LCM signatures: text encoder input_ids [1,77] -> [1,77,D]; UNet sample
[1,4,h,w] + encoder_hidden_states [1,77,D] + time input (AXERA's cut graph [1,T] fed from
time_input_txt2img.npy [4,T], or a plain timestep); VAE decoder (and the optional tiny TAESD decoder)
[1,4,h,w] -> [1,3,8h,8w]; VAE encoder [1,3,8h,8w] -> [1,8,h,w]. These are the checks the engine
runs when it loads the model; here every problem is listed. manifest.json sizes and sha256 are
checked when present. --runtime auto takes .axmodel files with pyaxengine where it is usable, else
.onnx with ONNX Runtime, as serve does.
Exit status: 0 when everything is OK, 1 otherwise.
"""


def cmd_models_pull(args: argparse.Namespace) -> int:
    from pi_axera_sd.modeltools.hub import PullError, pull, quiet_hub_client_logs, render_result

    quiet_hub_client_logs()
    try:
        result = pull(
            args.name,
            args.dest,
            revision=args.revision,
            include=args.include,
            subfolder=args.subfolder,
            resolution=args.resolution,
            token=args.token,
            endpoint=args.endpoint,
            cache_dir=args.cache_dir,
            offline=args.offline,
            link=args.link,
            force=args.force,
            check_hashes=not args.no_hash,
            progress=not args.quiet,
        )
    except PullError:
        raise  # main prints "error: <one line>" and exits 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue the download", file=sys.stderr)
        return 130
    except Exception as exc:  # anything unforeseen: still one line unless -v asks for the traceback
        if log.isEnabledFor(logging.DEBUG):
            raise
        secret = args.token or os.environ.get("HF_TOKEN") or "\0"
        text = (str(exc).strip().splitlines() or [""])[0].replace(secret, "***")
        print(f"error: {type(exc).__name__}: {text} (run with -v for details)", file=sys.stderr)
        return 1
    print(render_result(result))
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    from pi_axera_sd.cli.common import settings_from_args
    from pi_axera_sd.engine.layout import missing_models_hint
    from pi_axera_sd.modeltools.verify import verify_model

    # The same Settings as 'serve' (MODELS_DIR, TEXT_MODEL_DIR, UNET_MODEL... and PI_AXERA_SD_*),
    # so what is checked is exactly what the service would load.
    settings = settings_from_args(args, models_dir=args.dir)
    folder = settings.models_dir
    if not folder.is_dir():
        raise PiAxeraError(f"{folder} is not a folder. {missing_models_hint(folder)}")
    layout = model_layout(settings)
    report = verify_model(
        layout.root, runtime_options(settings), check_hashes=not args.no_hash, layout=layout
    )
    if args.json:
        data = report.as_dict()
        data["layout"] = {
            "kind": layout.kind,
            "tokenizer_packaged": layout.tokenizer_packaged,
            "warnings": list(layout.warnings),
        }
        print(json.dumps(data, indent=2))
    else:
        packaged = " (no tokenizer in the folder: the packaged CLIP tokenizer serves)"
        print(f"layout: {layout.kind} in {layout.root}{packaged if layout.tokenizer_packaged else ''}")
        for warning in layout.warnings:
            print(f"warning: {warning}")
        print(report.render())
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction, models_sub: argparse._SubParsersAction) -> None:
    from pi_axera_sd.cli.common import ENGINE_SETTINGS
    from pi_axera_sd.cli.settings_flags import add_settings_flags
    from pi_axera_sd.modeltools.hub import LINK_MODES, preset_help

    pull = models_sub.add_parser(
        "pull",
        help="download a model folder from the Hugging Face hub (preset or repo id)",
        description="Download a model from the Hugging Face hub (or HF_ENDPOINT), check it, and place "
        "its model folder where the service loads it.",
        epilog=PULL_EPILOG.format(presets=preset_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pull.add_argument("name", metavar="NAME-OR-REPO", help="a preset (see below) or a hub repo id owner/name")
    pull.add_argument(
        "--dest", type=Path, default=Path("models"), help="model folder to fill (default ./models)"
    )
    pull.add_argument("--revision", help="branch, tag or commit (default main)")
    pull.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="only files matching this glob (repeatable; replaces the preset's patterns)",
    )
    pull.add_argument("--subfolder", help="repo folder holding the model (default: the one with the UNet)")
    pull.add_argument(
        "--resolution",
        metavar="WxH",
        help="in a repo with several model folders (models/, models_320x320/...), fetch only the one "
        "of this size; a folder with no size in its name is 512x512. Without it such a repo is listed",
    )
    pull.add_argument(
        "--token", help="hub token for gated/private repos (default HF_TOKEN or the saved login)"
    )
    pull.add_argument("--endpoint", help="hub URL (default HF_ENDPOINT or https://huggingface.co)")
    pull.add_argument("--cache-dir", type=Path, help="download cache (default HF_HUB_CACHE)")
    pull.add_argument("--offline", action="store_true", help="use the local cache only (as HF_HUB_OFFLINE=1)")
    pull.add_argument(
        "--link",
        choices=LINK_MODES,
        default="hardlink",
        help="how files reach --dest: hardlink into the cache (default; copies across filesystems), "
        "symlink, or copy (for a folder that must stand alone, e.g. a container volume)",
    )
    pull.add_argument("--force", action="store_true", help="replace files of another model in --dest")
    pull.add_argument(
        "--no-hash", action="store_true", help="skip the sha256 checks (sizes are still checked)"
    )
    pull.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    pull.set_defaults(func=cmd_models_pull)

    verify = models_sub.add_parser(
        "verify",
        help="check a model folder: each component's file, runtime, inputs and outputs",
        description="Open every component of a model folder and check it against what the engine expects.",
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        type=Path,
        help="model folder (default MODELS_DIR or ./models; the other model variables apply as for serve)",
    )
    # the engine's settings as flags derived from Settings, as for serve and generate
    add_settings_flags(verify, only=(*ENGINE_SETTINGS, "npu_device"))
    verify.add_argument("--no-hash", action="store_true", help="check manifest sizes only, not sha256")
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.set_defaults(func=cmd_models_verify)


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
        deep_cache=args.deep_cache,
        static_shapes=args.static_shapes,
    )
    print_export(manifest, args.out)
    return 0


def cmd_models_tiny(args: argparse.Namespace) -> int:
    from pi_axera_sd.modeltools.export_sd import export_pipeline
    from pi_axera_sd.modeltools.random_sd import build_sd_pipeline, build_taesd

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

    info = quantize_model(args.model_dir, components=args.components, min_psnr=args.min_psnr)
    print(json.dumps(info, indent=2))
    for name, made in info["components"].items():
        if made.get("budget_met") is False:  # NNCF kept every layer it could in float and still fell short
            print(
                f"warning: {name} reached {made['psnr_db']} dB, under --min-psnr {made['min_psnr_db']}; "
                f"leave it out of the INT8 variant (delete {made['file']}) if that is too far off",
                file=sys.stderr,
            )
    print("use it with PI_AXERA_SD_VARIANT=int8 (OpenVINO runtime)")
    return 0


def register_tools(msub: argparse._SubParsersAction) -> None:
    """``models export``, ``models random`` and ``models quantize`` (registered before the others)."""
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
        "e.g. madebyollin/taesd) as vae_decoder_tiny.onnx and vae_encoder_tiny.onnx",
    )
    exp.add_argument(
        "--deep-cache",
        action="store_true",
        help="also export unet_deep.onnx + unet_shallow.onnx, the UNet pair that PI_AXERA_SD_DEEP_CACHE uses",
    )
    exp.add_argument(
        "--static-shapes",
        action="store_true",
        help="fix the UNet at batch 1 and 77 context tokens, as Pulsar2 compiles it for the NPU "
        "(default: free batch and context length, for long prompts and guidance in one run)",
    )
    exp.set_defaults(func=cmd_models_export)
    tiny = msub.add_parser(
        "random", help="export an SD1.5-shaped model with random weights (tests, benchmarks)"
    )
    tiny.add_argument("out", type=Path)
    tiny.add_argument("--size", choices=["tiny", "full"], default="tiny")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=cmd_models_tiny)

    from pi_axera_sd.modeltools.quantize import ALL_COMPONENTS, COMPONENTS, SUGGESTED_MIN_PSNR_DB

    quant = msub.add_parser(
        "quantize",
        help="write INT8 OpenVINO variants of the UNet / VAE decoder / VAE encoder (needs openvino + nncf)",
    )
    quant.add_argument("model_dir", type=Path)
    quant.add_argument(
        "--components",
        nargs="+",
        choices=ALL_COMPONENTS,
        default=list(COMPONENTS),
        help="unet_deep unet_shallow: the DeepCache pair (quantised in a run of its own)",
    )
    quant.add_argument(
        "--min-psnr",
        type=float,
        metavar="DB",
        help="VAE components: keep the layers that cost most in floating point until the worst "
        f"calibration sample is within DB of FP32 (e.g. {SUGGESTED_MIN_PSNR_DB:.0f}; slow: one model "
        "run per layer per pass). Without it the PSNR is measured and recorded only",
    )
    quant.set_defaults(func=cmd_models_quantize)
