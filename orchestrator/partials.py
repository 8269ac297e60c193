"""What a cell's scores need from each of its shards, computed from that shard's records alone.

A resume that adds one shard to a cell of a hundred should read one shard, not a hundred. Every poolable
metric (`Metric.poolable`: per-example scores, and group and cell metrics registered with per-record `stats`)
gives one row per record (`Metric.rows`), and the built-in chance baselines are means of per-record values
(`Metric.chance_rows`). A shard's rows, with its counts (examples, dropped shots, truncated prompts, nodes,
seconds), are its `ShardPartial`; the cell's scores are made from its shards' partials stacked in the plan's
shard order, through the same `aggregate.score_rows` as the whole cell's records, so the numbers are the same
whichever shards were read this time. orchestrator.cellcache keeps them in the store, per cell.

Pure: no store, no Ray, no MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator.metrics import MetricContext, get
from orchestrator.metrics.aggregate import CellScore, summarise_rows
from orchestrator.metrics.registry import RecordChance


@dataclass
class ShardPartial:
    """One shard's share of its cell: counts, and per metric one row per record (and per-record chance)."""

    n: int
    shots_dropped: int = 0
    truncated: int = 0
    nodes: tuple[str, ...] = ()  # distinct Ray nodes in its records' provenance
    seconds: float | None = None  # its shard_seconds (None: a store without provenance)
    gpus: float = 0.0
    old: int = 0  # records written before record version 2
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    chance: dict[str, np.ndarray] = field(default_factory=dict)


def partials(frame: Any, shard_ids: Sequence[str], names: Sequence[str], ctx: MetricContext) -> dict[str, ShardPartial]:
    """The partial of each shard in `shard_ids` whose rows `frame` holds (a `SweepStore.read_shards` frame, which
    carries each record's `shard_id`); {} for a frame without shard ids (it cannot be split)."""
    if len(frame) == 0:
        return {sid: _empty(names) for sid in shard_ids}
    if "shard_id" not in frame:
        return {}
    records = frame.to_dict("records")
    rows = {n: get(n).rows(records, ctx) for n in names}
    chance = {n: c for n in names if (c := get(n).chance_rows(records)) is not None}
    n_all = len(frame)
    shots = frame["shots_dropped"].gt(0).to_numpy() if "shots_dropped" in frame else np.zeros(n_all, bool)
    trunc = (frame["truncated"].fillna(False).astype(bool).to_numpy() if "truncated" in frame
             else np.zeros(n_all, bool))
    node = frame["node"].to_numpy() if "node" in frame else None
    secs = frame["shard_seconds"].astype(float).to_numpy() if "shard_seconds" in frame else None
    gpus = frame["gpus"].fillna(0.0).astype(float).to_numpy() if "gpus" in frame else np.zeros(n_all)
    old = frame["record_version"].isna().to_numpy() if "record_version" in frame else np.ones(n_all, bool)
    out = {}
    for sid, pos in frame.groupby("shard_id", sort=False).indices.items():
        first = pos[0]
        sec = None if secs is None or np.isnan(secs[first]) else float(secs[first])
        nodes = () if node is None else tuple(sorted({str(v) for v in node[pos] if v is not None and v == v}))
        out[str(sid)] = ShardPartial(
            n=len(pos), shots_dropped=int(shots[pos].sum()), truncated=int(trunc[pos].sum()), nodes=nodes,
            seconds=sec, gpus=float(gpus[first]), old=int(old[pos].sum()),
            rows={n: r[pos] for n, r in rows.items()}, chance={n: c[pos] for n, c in chance.items()})
    if sum(p.n for p in out.values()) != n_all:  # rows without a shard id: the frame cannot be split
        return {}
    for sid in shard_ids:  # a shard file with no rows
        out.setdefault(sid, _empty(names))
    return out


def _empty(names: Sequence[str]) -> ShardPartial:
    return ShardPartial(0, rows={n: np.zeros((0, 1)) for n in names})


def stack(parts: Sequence[ShardPartial], name: str) -> np.ndarray:
    """A metric's rows over the cell: its shards' rows in the cell's order (shards with no rows left out)."""
    got = [p.rows[name] for p in parts if len(p.rows[name])]
    return np.vstack(got) if got else np.zeros((0, 1))


def pooled_scores(parts: Sequence[ShardPartial], names: Sequence[str], ctx: MetricContext, n_samples: int,
                  seed: int) -> dict[str, CellScore]:
    """`summarise` of the cell whose shards' partials are `parts` (in the plan's shard order)."""
    rows = {n: stack(parts, n) for n in names}
    chance = {}
    for n in names:
        if isinstance(get(n).chance_fn, RecordChance):  # pooled from the shards' per-record values
            got = [p.chance[n] for p in parts if len(p.chance.get(n, ()))]
            chance[n] = np.concatenate(got) if got else np.zeros(0)
    return summarise_rows(names, rows, chance, ctx, n_samples, seed)


def counts(parts: Sequence[ShardPartial]) -> dict[str, Any]:
    """The cell's CellResult counts from its shards' partials: examples, dropped shots, truncated prompts,
    distinct nodes (None without provenance), inference seconds and GPU-seconds (absent without provenance)."""
    nodes = set().union(*(p.nodes for p in parts)) if parts else set()
    out: dict[str, Any] = {
        "n_examples": sum(p.n for p in parts),
        "shots_dropped": sum(p.shots_dropped for p in parts),
        "truncated": sum(p.truncated for p in parts),
        "nodes": len(nodes) if nodes else None,
    }
    timed = [p for p in parts if p.n]
    if any(p.seconds is not None for p in timed):
        seconds = np.asarray([p.seconds or 0.0 for p in timed], dtype=np.float64)
        gpus = np.asarray([p.gpus for p in timed], dtype=np.float64)
        out["shard_seconds"] = float(seconds.sum())
        out["gpu_seconds"] = float((seconds * gpus).sum())
    return out
