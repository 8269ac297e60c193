"""Figures per task (matplotlib, headless): a panel per metric, a line per prompt style.

Putting every style on the same panel is how a reader sees a prompt format
move a curve (e.g. chain-of-thought shifting where exact match leaves zero);
putting every metric of the same outputs side by side is how a reader sees an
emergent exact-match curve next to a smooth edit distance (Schaeffer et al.
2023, Fig. 3). Parameters on a log axis; the bootstrap 95% interval as a band;
the random-chance score dashed. With `labels` (each curve's verdict), every
panel says the verdict of each style in its line's colour, so a figure read
alone still gives the answer.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from orchestrator.analysis.curves import Curve  # noqa: E402

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def style_colors(prompts: Sequence[str]) -> dict[str, str]:
    """A stable colour per prompt style (sorted order), shared by every panel and the HTML report."""
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(sorted(set(prompts)))}


Labels = Mapping[tuple[str, str, str], str]  # (task, prompt, metric) -> verdict label


def panel_columns(n_metrics: int) -> int:
    """Panels per row of a task's small multiples (the HTML report lays each panel's verdicts out the same)."""
    return max(1, min(3, n_metrics))


def metric_order(curves: Sequence[Curve]) -> list[str]:
    """Metrics of a task, discontinuous ones first, then by name."""
    kinds = {c.metric: c.kind for c in curves}
    return sorted(kinds, key=lambda m: (kinds[m] != "discontinuous", m))


def plot_task(curves: Sequence[Curve], path: Path, title: str | None = None, labels: Labels | None = None) -> Path:
    """Write one PNG for the curves of one task: a panel per metric, every prompt style on each panel."""
    fig = task_figure(curves, title, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def task_png(curves: Sequence[Curve], title: str | None = None, labels: Labels | None = None) -> bytes:
    """The PNG of `plot_task` as bytes (for embedding in a self-contained report)."""
    fig = task_figure(curves, title, labels)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def task_figure(curves: Sequence[Curve], title: str | None = None, labels: Labels | None = None) -> Figure:
    """The matplotlib figure behind `plot_task` (the caller closes it); `labels` puts each style's verdict on
    its panel, in its line's colour."""
    if not curves:
        raise ValueError("a task figure needs at least one curve")
    metrics = metric_order(curves)
    colors = style_colors([c.prompt for c in curves])
    n = len(metrics)
    cols = panel_columns(n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        panel = sorted((c for c in curves if c.metric == metric), key=lambda c: c.prompt)
        for c in panel:
            color = colors[c.prompt]
            ax.plot(c.x, c.y, marker="o", ms=4, lw=1.8, color=color, label=c.prompt)
            pts = [(x, lo, hi) for x, lo, hi in zip(c.x, c.lo, c.hi, strict=False) if _finite(lo) and _finite(hi)]
            if len(pts) >= 2:
                xs, los, his = zip(*pts, strict=True)
                ax.fill_between(xs, los, his, color=color, alpha=0.15, lw=0)
        chances = sorted({round(c.chance, 12) for c in panel if c.chance is not None and _finite(c.chance)})
        for ch in chances:
            ax.axhline(ch, color="grey", ls="--", lw=1, label="chance" if ch == chances[0] else None)
        ax.set_xscale("log")
        first = panel[0]
        ax.set_title(f"{metric} ({first.kind})", fontsize=10)
        ax.set_xlabel(first.x_label)
        ax.set_ylabel("higher is better" if first.higher_is_better else "lower is better", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        found = [(c, labels.get((c.task, c.prompt, c.metric))) for c in panel] if labels else []
        for i, (c, label) in enumerate((c, lb) for c, lb in found if lb):  # before the legend: "best" avoids text
            ax.text(0.02, 0.97 - 0.09 * i, label, transform=ax.transAxes, ha="left", va="top", fontsize=8,
                    fontweight="bold", color=colors[c.prompt],
                    bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1})
        ax.legend(loc="best", fontsize=7, frameon=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title or curves[0].task, fontsize=12)
    fig.tight_layout()
    return fig


def plot_tasks(curves: Sequence[Curve], out_dir: Path, labels: Labels | None = None) -> list[Path]:
    """One PNG per task in `out_dir` (named after the task); returns their paths in task order."""
    groups: dict[str, list[Curve]] = {}
    for c in curves:
        groups.setdefault(c.task, []).append(c)
    return [plot_task(g, Path(out_dir) / f"{safe_name(task)}.png", labels=labels) for task, g in sorted(groups.items())]


def safe_name(name: str) -> str:
    """A file-name-safe version of a task name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "task"


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))
