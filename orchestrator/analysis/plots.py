"""Plots of scaling curves (matplotlib, headless): one figure per task x prompt style.

Each metric gets its own panel (their scales differ: a probability, a distance,
a log-probability), all against parameter count on a log axis, with the 95%
interval as a band and the random-chance baseline dashed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from orchestrator.analysis.curves import Curve  # noqa: E402

DISCONTINUOUS_COLOR = "#c0392b"
CONTINUOUS_COLOR = "#2471a3"


def plot_task_prompt(curves: Sequence[Curve], path: Path, title: str | None = None) -> Path:
    """Write one PNG with a panel per metric for curves sharing task and prompt style."""
    n = len(curves)
    if n == 0:
        raise ValueError(f"no curves to plot into {path}")
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, c in zip(axes.flat, curves, strict=False):
        color = DISCONTINUOUS_COLOR if c.kind == "discontinuous" else CONTINUOUS_COLOR
        ax.plot(c.x, c.y, marker="o", color=color, lw=2)
        if all(v == v for v in c.lo + c.hi):
            ax.fill_between(c.x, c.lo, c.hi, color=color, alpha=0.2, lw=0)
        if c.chance is not None:
            ax.axhline(c.chance, color="grey", ls="--", lw=1, label="chance")
            ax.legend(loc="best", fontsize=7, frameon=False)
        ax.set_xscale("log")
        arrow = "higher is better" if c.higher_is_better else "lower is better"
        ax.set_title(f"{c.metric} ({c.kind})", fontsize=10)
        ax.set_xlabel(c.x_label)
        ax.set_ylabel(arrow, fontsize=8)
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    first = curves[0]
    fig.suptitle(title or f"{first.task} · {first.prompt}", fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(curves: Sequence[Curve], out_dir: Path) -> list[Path]:
    """One PNG per task x prompt style; returns their paths."""
    groups: dict[str, list[Curve]] = {}
    for c in curves:
        groups.setdefault(c.key, []).append(c)
    paths = []
    for key, group in sorted(groups.items()):
        task, prompt = key.split("/", 1)
        paths.append(plot_task_prompt(group, out_dir / f"{task}__{prompt}.png"))
    return paths
