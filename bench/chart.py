"""The benchmark's chart: seconds per image per configuration, split by stage, one panel per mode."""

from __future__ import annotations

from pathlib import Path

STAGES = (
    ("text", "text encoder"),
    ("vae_encode", "VAE encoder"),
    ("unet", "UNet"),
    ("vae_decode", "decoder"),
)
COLOURS = ("#8c8c8c", "#e0a030", "#3070b0", "#50a050", "#d0d0d0")


def write_chart(rows: list[dict], path: Path) -> Path | None:
    """Write a PNG of horizontal stacked bars; ``None`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install 'pi-axera-sd[plot]')")
        return None
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    ok = [r for r in rows if "error" not in r]
    height = max(2.5, 0.32 * len(ok) + 1.2 * len(modes))
    fig, axes = plt.subplots(len(modes), 1, figsize=(9, height), squeeze=False, sharex=True)
    for ax, mode in zip(axes[:, 0], modes, strict=True):
        mine = [r for r in ok if r["mode"] == mode]
        labels = [r["config"] for r in mine]
        left = [0.0] * len(mine)
        for (key, name), colour in zip(STAGES, COLOURS, strict=False):
            widths = [r["stages_ms"].get(key, 0.0) / 1000 for r in mine]
            ax.barh(labels, widths, left=left, color=colour, label=name)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        # the rest of the image time: scheduler, image conversion, Python
        rest = [max(0.0, r["median_s"] - x) for r, x in zip(mine, left, strict=True)]
        ax.barh(labels, rest, left=left, color=COLOURS[-1], label="other")
        for y, r in enumerate(mine):
            ax.text(r["median_s"], y, f" {r['median_s']:.2f} s", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_title(mode, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("seconds per image (median)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7, loc="upper center", ncols=len(names), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90, bbox_inches="tight")  # long configuration names stay whole
    plt.close(fig)
    return path
