"""Load-test results as a markdown table and PNG charts (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

COLUMNS = (
    "instances",
    "clients",
    "requests",
    "status",
    "lost",
    "503 w/o Retry-After",
    "img/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "first image s",
    "server RSS MiB start→end",
)


def _cell(value: object) -> str:
    return "–" if value is None else str(value)


def markdown_table(results: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        rss = r.get("rss_mb") or {}
        memory = f"{rss['start']}→{rss['end']}" if rss.get("start") is not None else None
        status = " ".join(f"{k}:{v}" for k, v in r["status"].items()) or None
        row = [
            r["instances"],
            r["concurrency"],
            r["requests"],
            status,
            r["lost"],
            r["503_without_retry_after"],
            r["images_per_s"],
            r["latency_ms"]["p50"],
            r["latency_ms"]["p95"],
            r["latency_ms"]["p99"],
            r["time_to_first_image_s"],
            memory,
        ]
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _series(results: list[dict], by: str, x: str) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        out[r[by]].append(r)
    return {k: sorted(v, key=lambda r: r[x]) for k, v in sorted(out.items())}


def write_charts(results: list[dict], out_dir: Path, title: str) -> list[Path]:
    """throughput.png and latency.png against concurrency (one line per instance count), or against
    instances when every configuration ran at one concurrency."""
    import matplotlib  # the 'plot' extra (checked before the run: loadtest.sweep.charts_wanted)

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    one_level = len({r["concurrency"] for r in results}) == 1
    x, by = ("instances", "concurrency") if one_level else ("concurrency", "instances")
    label = {"instances": "instances", "concurrency": "clients"}
    series = _series(results, by, x)
    written = []
    charts = [
        ("throughput.png", "images / s", [("images_per_s", "-o", "")]),
        ("latency.png", "latency (s)", [("p50", "-o", " p50"), ("p95", "--s", " p95")]),
    ]
    for name, ylabel, lines in charts:
        fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
        for key, rows in series.items():
            xs = [r[x] for r in rows]
            for metric, style, suffix in lines:
                if metric == "images_per_s":
                    ys = [r["images_per_s"] for r in rows]
                else:
                    ys = [(r["latency_ms"][metric] or float("nan")) / 1000.0 for r in rows]
                ax.plot(xs, ys, style, label=f"{key} {label[by]}{suffix}")
        ax.set_xlabel(label[x])
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({r[x] for r in results}))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
