#!/usr/bin/env python3
"""Build the default CLIP interrogation taxonomy: the 20,101 ImageNet-21K labels.

Where the data comes from
-------------------------
The inputs are two plain-text tables shipped inside the timm wheel (pytorch-image-models,
https://github.com/huggingface/pytorch-image-models, Apache-2.0 licence):

* ``timm/data/_info/imagenet21k_goog_synsets.txt``: the 21,843 WordNet synset ids of Google's
  ImageNet-21K ("fall11") class list, one per line, in class-index order;
* ``timm/data/_info/imagenet_synset_to_lemma.txt``: ``<synset id> TAB <lemma, lemma, ...>``.

Only facts are derived from them (which synsets exist, in which order, and their names); no timm
code is used. The label names themselves are ImageNet/WordNet lemmas.

Derivation rule
---------------
For each synset in list order take the first comma-separated lemma, stripped of surrounding
whitespace, and drop it when an identical (exact, case-sensitive) label was already emitted.
On the Google ImageNet-21K list this yields exactly 20,101 labels (20,070 if compared
lower-cased), beginning ``organism, benthos, heterotroph, cell, person``.

Usage
-----
Get the wheel without its (large) dependencies, then build::

    pip download --no-deps -d /tmp/timmwheel timm
    python scripts/build_taxonomy.py --wheel /tmp/timmwheel/timm-*.whl

or read an installed timm (``--installed``) or two explicit files
(``--synsets FILE --lemmas FILE``). The result is written, one label per line with no header,
to ``src/pi_axera_sd/data/imagenet21k_labels.txt`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

SYNSETS_MEMBER = "timm/data/_info/imagenet21k_goog_synsets.txt"
LEMMAS_MEMBER = "timm/data/_info/imagenet_synset_to_lemma.txt"
EXPECTED_COUNT = 20101
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "pi_axera_sd" / "data" / "imagenet21k_labels.txt"


class TaxonomyBuildError(Exception):
    """The inputs are missing or malformed, or the result does not have the expected size."""


def read_from_wheel(wheel: Path) -> tuple[str, str, str]:
    """Return (synsets text, lemmas text, source description) read out of a timm wheel."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            synsets = zf.read(SYNSETS_MEMBER).decode("utf-8")
            lemmas = zf.read(LEMMAS_MEMBER).decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise TaxonomyBuildError(f"cannot read the timm tables from wheel {wheel}: {exc}") from exc
    return synsets, lemmas, f"wheel {wheel.name}"


def read_from_installed() -> tuple[str, str, str]:
    """Return (synsets text, lemmas text, source description) from an installed timm package."""
    from importlib import metadata, resources

    try:
        root = resources.files("timm")
        synsets = (root / SYNSETS_MEMBER.removeprefix("timm/")).read_text(encoding="utf-8")
        lemmas = (root / LEMMAS_MEMBER.removeprefix("timm/")).read_text(encoding="utf-8")
    except (ImportError, OSError) as exc:
        raise TaxonomyBuildError(f"cannot read the timm tables from the installed package: {exc}") from exc
    try:
        version = metadata.version("timm")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return synsets, lemmas, f"installed timm {version}"


def read_from_files(synsets_path: Path, lemmas_path: Path) -> tuple[str, str, str]:
    """Return (synsets text, lemmas text, source description) from two explicit files."""
    try:
        synsets = synsets_path.read_text(encoding="utf-8")
        lemmas = lemmas_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyBuildError(f"cannot read the input files: {exc}") from exc
    return synsets, lemmas, f"files {synsets_path} + {lemmas_path}"


def parse_synsets(text: str) -> list[str]:
    """Synset ids in file order; blank lines are skipped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_lemmas(text: str) -> dict[str, str]:
    """Map synset id -> its first lemma (stripped)."""
    first: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        wnid, sep, names = line.partition("\t")
        if not sep:
            raise TaxonomyBuildError(f"lemma table line {lineno} has no tab separator: {line!r}")
        first[wnid.strip()] = names.split(",", 1)[0].strip()
    return first


def derive_labels(synsets: Iterable[str], first_lemma: dict[str, str]) -> list[str]:
    """First lemma of each synset in order, later exact (case-sensitive) repeats dropped."""
    labels: list[str] = []
    seen: set[str] = set()
    for wnid in synsets:
        try:
            label = first_lemma[wnid]
        except KeyError:
            raise TaxonomyBuildError(f"synset {wnid} has no entry in the lemma table") from None
        if not label:
            raise TaxonomyBuildError(f"synset {wnid} has an empty first lemma")
        if label not in seen:
            seen.add(label)
            labels.append(label)
    return labels


def write_labels(labels: list[str], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(f"{label}\n" for label in labels)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Derive the ImageNet-21K label list (first lemma per synset, deduplicated) "
        "from timm's tables."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheel", type=Path, help="path to a timm wheel (.whl), read as a zip file")
    source.add_argument("--installed", action="store_true", help="read the tables from an installed timm")
    source.add_argument(
        "--synsets", type=Path, help="synset id list (one id per line, in order); needs --lemmas"
    )
    parser.add_argument(
        "--lemmas", type=Path, help="lemma table (id TAB 'lemma, lemma, ...'); with --synsets"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--expected-count",
        type=int,
        default=EXPECTED_COUNT,
        help=f"fail without writing unless exactly this many labels result (default {EXPECTED_COUNT}; "
        "0 disables the check)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.synsets is None) != (args.lemmas is None):
        parser.error("--synsets and --lemmas go together")

    try:
        if args.wheel is not None:
            synsets_text, lemmas_text, source = read_from_wheel(args.wheel)
        elif args.installed:
            synsets_text, lemmas_text, source = read_from_installed()
        else:
            synsets_text, lemmas_text, source = read_from_files(args.synsets, args.lemmas)
        synsets = parse_synsets(synsets_text)
        labels = derive_labels(synsets, parse_lemmas(lemmas_text))
    except TaxonomyBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print(f"source: {source}")
    print(f"synsets: {len(synsets)}")
    print(f"labels: {len(labels)} (lower-cased unique: {len({label.lower() for label in labels})})")
    if args.expected_count and len(labels) != args.expected_count:
        print(
            f"error: expected {args.expected_count} labels, got {len(labels)}; nothing written",
            file=sys.stderr,
        )
        return 1
    write_labels(labels, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
