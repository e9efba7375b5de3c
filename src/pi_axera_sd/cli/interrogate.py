"""CLI: ``models export-clip``, ``models random-clip`` and ``interrogate`` (tags of a local image)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pi_axera_sd.cli.common import print_export
from pi_axera_sd.defaults import TAG_THRESHOLD, TAG_TOP_K
from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.wiring import image_limits


def cmd_export_clip(args: argparse.Namespace) -> int:
    from pi_axera_sd.modeltools.export_clip import export_clip

    manifest = export_clip(
        args.source,
        args.out,
        split_projections=args.split_projections,
        int32_ids=args.int32_ids,
        static_text_batch=args.static_text_batch,
        name=args.name,
    )
    print_export(manifest, args.out)
    return 0


def cmd_random_clip(args: argparse.Namespace) -> int:
    from pi_axera_sd.modeltools.export_clip import export_clip_model
    from pi_axera_sd.modeltools.random_clip import build_clip_model

    model = build_clip_model(args.size, seed=args.seed)
    export_clip_model(
        model,
        args.out,
        split_projections=args.split_projections,
        int32_ids=args.int32_ids,
        static_text_batch=args.static_text_batch,
        source=f"random {args.size} weights (seed {args.seed})",
        name=f"random-clip-{args.size}",
    )
    print(f"wrote a {args.size} CLIP with random weights to {args.out}")
    return 0


def _read_categories(text: str) -> object:
    raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--categories is not valid JSON: {exc}") from exc


def cmd_interrogate(args: argparse.Namespace) -> int:
    from pi_axera_sd.cli.common import settings_from_args
    from pi_axera_sd.engine.imageio import decode_image_bytes
    from pi_axera_sd.errors import ModelError
    from pi_axera_sd.interrogate.loading import load_interrogator
    from pi_axera_sd.interrogate.scoring import check_categories

    settings = settings_from_args(args)
    image = decode_image_bytes(Path(args.image).read_bytes(), image_limits(settings))
    categories = None
    if args.categories:  # checked before a possibly long first build
        categories = check_categories(_read_categories(args.categories), settings.max_structured_labels)
    interrogator = load_interrogator(settings, templates=args.template or None)
    if interrogator is None:
        from pi_axera_sd.printed_commands import command

        raise ModelError(
            f"no CLIP model in {settings.clip_dir}: set CLIP_DIR or run "
            f"'{command('models', 'export-clip')} SOURCE OUT'"
        )
    last = 0.0
    while interrogator.warmup_step():
        if time.monotonic() - last > 2:
            last = time.monotonic()
            print(interrogator.status().message, file=sys.stderr)
    state = interrogator.status()
    if state.error:
        raise ModelError(state.message)
    out: dict[str, object] = {}
    if categories is not None:
        result = interrogator.structured(image, categories)
        out["results"] = {
            name: {"winner": r.winner, "confidence": round(r.confidence, 4)}
            for name, r in result.results.items()
        }
        out["general_tags"] = result.general_tags
    else:
        tags = interrogator.tags(image, top_k=args.top_k, threshold=args.threshold)
        out["caption"] = ", ".join(t.tag for t in tags)
        out["interrogations"] = [{"tag": t.tag, "score": round(t.score, 4)} for t in tags]
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _add_npu_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--int32-ids", action="store_true", help="text tower takes int32 input_ids")
    p.add_argument(
        "--static-text-batch",
        type=int,
        metavar="N",
        help="fixed text input [N, 77] for NPU compilers (default: dynamic batch and length)",
    )


def register(sub: argparse._SubParsersAction, models_sub: argparse._SubParsersAction) -> None:
    from pi_axera_sd.cli.common import add_engine_flags

    exp = models_sub.add_parser(
        "export-clip", help="transformers (or open_clip) CLIP -> CLIP tower layout (needs [export] extra)"
    )
    exp.add_argument(
        "source", help="CLIP folder or hub id (openai/clip-vit-base-patch32), or open_clip:ARCH/TAG"
    )
    exp.add_argument("out", type=Path, help="output folder (point CLIP_DIR at it)")
    exp.add_argument(
        "--split-projections",
        action="store_true",
        help="towers without projections + visual/text_projection.npy applied on the CPU (prior NPU layout)",
    )
    _add_npu_flags(exp)
    exp.add_argument("--name", help="model name (default: folder name)")
    exp.set_defaults(func=cmd_export_clip)

    rnd = models_sub.add_parser("random-clip", help="export a CLIP with random weights (tests, benchmarks)")
    rnd.add_argument("out", type=Path)
    rnd.add_argument("--size", choices=["tiny", "vit-b-32"], default="tiny")
    rnd.add_argument("--seed", type=int, default=0)
    rnd.add_argument("--split-projections", action="store_true")
    _add_npu_flags(rnd)
    rnd.set_defaults(func=cmd_random_clip)

    itg = sub.add_parser("interrogate", help="CLIP tags of a local image (builds the label cache if needed)")
    itg.add_argument("image", help="PNG/JPEG/WebP file")
    itg.add_argument(
        "--clip-dir", dest="clip_dir", type=Path, help="CLIP folder (env CLIP_DIR, default models/clip)"
    )
    itg.add_argument("--tags-file", dest="interrogate_tags_file", type=Path, help="custom taxonomy file")
    itg.add_argument("--cache-dir", dest="embedding_cache_dir", type=Path, help="embedding cache folder")
    itg.add_argument("--top-k", type=int, default=TAG_TOP_K)
    itg.add_argument("--threshold", type=float, default=TAG_THRESHOLD)
    itg.add_argument("--template", action="append", help="prompt template with {} (repeatable)")
    itg.add_argument("--categories", help='structured mode: JSON {"name": ["label", ...]} or @file.json')
    add_engine_flags(itg)
    itg.set_defaults(func=cmd_interrogate)
