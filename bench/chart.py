"""A PNG chart of the targets, in two panels.

- **Ratios** (flume / baseline): one horizontal bar per target on one log axis centred on 1,
  with the target's bound as a black tick; green when met, red when not, grey when the issue
  sets no bound.
- **Absolute figures** (ms, MB, s): one small linear axis per target, in its own unit, with the
  bound as a dashed line. They are not ratios, so they do not share the ratios' axis.

Needs matplotlib (``pip install -e '.[bench]'``); without it :func:`draw` says so and draws
nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_COLORS = {"pass": "#2e8b57", "FAIL": "#c0392b", "info": "#7f8c8d"}


def _label(t: dict[str, Any]) -> str:
    bound = f"{t['op']} {t['target']:g}" if t["target"] is not None else "no bound"
    better = "higher" if t["op"].startswith(">") else "lower"
    return f"{t['label']}\ntarget {bound} ({better} is better)"


def _ratios(ax: Any, shown: list[dict[str, Any]]) -> None:
    values = [t["value"] for t in shown]
    known = [v for v in values if v] + [t["target"] for t in shown if t["target"]] + [1.0]
    # Symmetric about 1 on the log axis, so that "2x slower" and "2x faster" look alike.
    span = max(max(known), 1 / min(known)) * 2.5
    low, high = 1 / span, span
    ys = list(range(len(shown)))[::-1]
    for y, t, v in zip(ys, shown, values, strict=True):
        if v is None:
            ax.barh(y, high - low, left=low, color="none", edgecolor="#bbbbbb", hatch="//")
            ax.text(1.0, y, "not measured", va="center", ha="center", fontsize=8)
            continue
        left, right = sorted((1.0, v))
        ax.barh(y, right - left, left=left, color=_COLORS.get(t["verdict"], "#dddddd"))
        ax.text(max(v, 1.0) * 1.08, y, f"{v:.3g}x", va="center", fontsize=8)
        if t["target"] is not None:
            ax.plot([t["target"]] * 2, [y - 0.42, y + 0.42], color="black", linewidth=2)
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_yticks(ys)
    ax.set_yticklabels([_label(t) for t in shown], fontsize=8)
    ax.axvline(1.0, color="#555555", linewidth=0.8)
    ax.set_xlabel("ratio flume / baseline (log scale; black tick = target)")
    ax.set_title("ratios", fontsize=9, loc="left")


def _absolute(ax: Any, t: dict[str, Any]) -> None:
    v, bound = t["value"], t["target"]
    top = max(x for x in (v, bound, 1e-9) if x is not None) * 1.35
    if v is None:
        ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", fontsize=8)
    else:
        ax.barh(0, v, color=_COLORS.get(t["verdict"], "#dddddd"))
        ax.text(v + top * 0.02, 0, f"{v:.3g} {t['unit']}", va="center", fontsize=8)
    if bound is not None:
        ax.axvline(bound, color="black", linewidth=1.5, linestyle="--")
    ax.set_xlim(0, top)
    ax.set_yticks([0])
    ax.set_yticklabels([_label(t)], fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel(t["unit"], fontsize=7, labelpad=1)


def draw(targets: list[dict[str, Any]], path: Path, title: str) -> str | None:
    """Draw ``targets`` (from :func:`bench.ratios.evaluate`) to ``path``.

    Returns None on success, else why no chart was drawn.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"

    ratios = [t for t in targets if t["unit"] == "x"]
    absolute = [t for t in targets if t["unit"] != "x"]
    heights = [max(1, len(ratios)) * 0.62 + 0.8] + [0.75] * len(absolute)
    fig, axes = plt.subplots(
        len(heights),
        1,
        figsize=(11, sum(heights) + 1.2),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    _ratios(axes[0][0], ratios)
    for (ax,), t in zip(axes[1:], absolute, strict=True):
        _absolute(ax, t)
    if absolute:
        axes[1][0].set_title(
            "absolute figures, each on its own axis (dashed line = target)",
            fontsize=9,
            loc="left",
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
