"""A PNG bar chart of the targets: measured value against bound, green when met, red when not.

Needs matplotlib (``pip install -e '.[bench]'``); without it :func:`draw` says so and draws
nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


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

    shown = [t for t in targets if t["target"] is not None or t["value"] is not None]
    labels = []
    for t in shown:
        bound = f"{t['op']} {t['target']:g}" if t["target"] is not None else "none (information)"
        unit = "" if t["unit"] == "x" else f" ({t['unit']})"
        labels.append(f"{t['label']}{unit}\ntarget {bound}")

    fig, ax = plt.subplots(figsize=(11, 0.62 * len(shown) + 1.6))
    ys = list(range(len(shown)))[::-1]
    values = [t["value"] for t in shown]
    positive = [v for v in values if v] + [t["target"] for t in shown if t["target"]]
    low = min(positive) / 3 if positive else 0.1
    high = max(positive) * 3 if positive else 10.0
    for y, t, v in zip(ys, shown, values, strict=True):
        color = {"pass": "#2e8b57", "FAIL": "#c0392b", "info": "#7f8c8d"}.get(
            t["verdict"], "#dddddd"
        )
        if v is None:
            ax.barh(y, high, left=low, color="none", edgecolor="#bbbbbb", hatch="//")
            ax.text(math.sqrt(low * high), y, "not available", va="center", ha="center", fontsize=8)
            continue
        ax.barh(y, max(v, low) - low, left=low, color=color)
        right = max(v, low, t["target"] or 0.0)  # write the value clear of the target tick
        ax.text(right * 1.12, y, f"{v:.3g}", va="center", fontsize=8)
        if t["target"] is not None:
            ax.plot([t["target"]] * 2, [y - 0.42, y + 0.42], color="black", linewidth=2)
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(1.0, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("measured (ratio flume / baseline, or ms / MB); black tick = target")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
