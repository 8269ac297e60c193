"""Scaling curves: per-cell scores lined up against model size. Pure.

A Curve is one task x prompt style x metric across the family's sizes, with
each point's bootstrap 95% interval and the metric's random-chance baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CellResult:
    """The scores of one cell, plus what puts it on a curve."""

    cell_id: str
    model: str
    params: int
    task: str
    prompt: str
    n_examples: int
    shots_dropped: int
    scores: Mapping[str, Mapping[str, float]]  # metric -> {mean, lo, hi, n, chance, ...}
    non_embedding_params: int | None = None
    train_flops: float | None = None
    train_step: int | None = None
    truncated: int = 0  # examples whose prompt the model did not read whole (Record.truncated)
    nodes: int | None = None  # distinct Ray nodes that ran the cell's shards (None: a store without provenance)
    shard_seconds: float | None = None  # inference time summed over the cell's shards (None: no provenance)
    gpu_seconds: float | None = None  # the same weighted by the GPUs each replica held (0 on CPU)


X_LABELS = {
    "params": "parameters",
    "non_embedding_params": "non-embedding parameters",
    "train_flops": "training FLOPs",
    "train_step": "training step",
    "total_params": "parameters",
    "flop_matched_non_embedding_params": "FLOP-matched non-embedding parameters",
}


@dataclass(frozen=True)
class Curve:
    """One metric's scaling curve for one task under one prompt style."""

    task: str
    prompt: str
    metric: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    models: tuple[str, ...]
    chance: float | None = None
    higher_is_better: bool = True
    best: float | None = None  # the perfect score, where the metric has one (BIG-bench's high_score)
    kind: str = "continuous"
    meta: Mapping[str, object] = field(default_factory=dict)
    x_name: str = "params"  # which scale x is: params | non_embedding_params | train_flops | train_step | ...

    @property
    def key(self) -> str:
        return f"{self.task}/{self.prompt}"

    @property
    def x_label(self) -> str:
        """The x axis title of plots."""
        return X_LABELS.get(self.x_name, self.x_name)


def curves(
    results: Sequence[CellResult], metric_info: Mapping[str, Mapping[str, object]], x: str = "params"
) -> list[Curve]:
    """Group cell results into curves, sorted by x ascending. NaN scores are dropped from a curve.

    `x` is the CellResult field read as scale (config `analysis.x`): params,
    non_embedding_params, train_flops, or train_step for a family whose
    members are checkpoints of one model. Cells that do not declare it are
    left out (config validation refuses a sweep where a selected size lacks it).
    """
    groups: dict[tuple[str, str, str], list[tuple[float, str, Mapping[str, float]]]] = {}
    for r in results:
        xv = getattr(r, x)
        if xv is None:
            continue
        for metric, s in r.scores.items():
            groups.setdefault((r.task, r.prompt, metric), []).append((float(xv), r.model, s))
    out = []
    for (task, prompt, metric), pts in sorted(groups.items()):
        pts = sorted((p for p in pts if _finite(p[2].get("mean"))), key=lambda p: p[0])
        if not pts:
            continue
        chances = [p[2].get("chance") for p in pts if _finite(p[2].get("chance"))]
        info = metric_info.get(metric, {})
        out.append(
            Curve(
                task=task,
                prompt=prompt,
                metric=metric,
                x=tuple(p[0] for p in pts),
                y=tuple(float(p[2]["mean"]) for p in pts),
                lo=tuple(float(p[2].get("lo", math.nan)) for p in pts),
                hi=tuple(float(p[2].get("hi", math.nan)) for p in pts),
                models=tuple(p[1] for p in pts),
                chance=float(sum(chances) / len(chances)) if chances else None,
                higher_is_better=bool(info.get("higher_is_better", True)),
                kind=str(info.get("kind", "continuous")),
                best=_best(pts),
                x_name=x,
            )
        )
    return out


def _best(pts: list) -> float | None:
    vals = {float(p[2]["best"]) for p in pts if _finite(p[2].get("best"))}
    return vals.pop() if len(vals) == 1 else None


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))
