"""The MLflow view of a sweep, and how it fills in while the sweep runs.

The store stays the source of truth; MLflow shows it. While shards land the
driver (the only MLflow writer: SQLite and experiment creation do not like
many) reopens the sweep's parent run as RUNNING and logs shards done / failed
/ total over time, creates a cell's run at its first shard, scores the cell
and logs its metrics the moment its last shard lands, and adds the cell's
point to its curve runs. Updates are batched every `tracking.live_interval`
seconds so 100k shards do not mean 100k MLflow calls. A tracking failure
while shards run is logged and the shards go on: what was not sent is kept
and sent again after a backoff (30 s, doubling, at most 10 min), and the full
view is rebuilt from the store at the end (`sweep.record`) or, if MLflow is
still away then, by `orchestrator sync`.

Every run is found by its tag before one is created (orchestrator.tracking),
so live updates, the final pass and a later `report` never duplicate a run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.analysis.curves import CellResult, Curve, curves
from orchestrator.plan import Cell, Plan, Shard
from orchestrator.tracking import Tracker

log = logging.getLogger(__name__)
MAX_MLFLOW_STEP = 2**63 - 1  # MLflow stores a metric step as int64
RETRY_FIRST_S = 30.0  # after a failed flush, wait this long before trying again; doubled each failure
RETRY_MAX_S = 600.0


def open_parent(tracker: Tracker, cfg: Any, plan: Plan, code: str) -> str:
    """The sweep's parent run (found by sweep id, else created) with config and plan params."""
    from orchestrator.config import to_container

    return tracker.sweep_run(
        plan.sweep_id,
        plan.fingerprint,
        to_container(cfg),
        {
            "cells": len(plan.cells),
            "shards": len(plan.shards),
            "fingerprint": plan.fingerprint,
            "storage": f"{cfg.storage.root}/{plan.sweep_id}",
            "code_version": code,
        },
    )


def cell_params(plan: Plan, cell: Cell) -> dict[str, Any]:
    """What a cell run's params say: the model and its scales, the task, the prompt style, the cell's size."""
    m = cell.model
    return {
        "family": m.family,
        "size": m.name,
        "params": m.params,
        **{k: getattr(m, k) for k in ("non_embedding_params", "train_flops", "train_step")
           if getattr(m, k) is not None},
        "model_path": m.path,
        "revision": m.revision,
        **({"revision_requested": m.requested_revision} if m.requested_revision else {}),
        **({"model_fingerprint": m.fingerprint} if m.fingerprint else {}),
        "task": cell.task,
        "task_id": cell.task_id,
        "prompt_style": cell.prompt.name,
        "style": cell.prompt.config.style,
        "shots": cell.prompt.config.shots,
        "examples": cell.n_examples,
        "shards": len(plan.shards_of(cell.id)),
    }


def cell_metrics(c: CellResult) -> dict[str, dict[str, float]]:
    """A scored cell's metrics for its run, plus its counts and the device time it used."""
    extra = {"shots_dropped": float(c.shots_dropped), "truncated": float(c.truncated)}
    if c.shard_seconds is not None:
        extra["shard_seconds"] = c.shard_seconds
    if c.gpu_seconds is not None:
        extra["gpu_seconds"] = c.gpu_seconds
    return {**c.scores, **{k: {"mean": v} for k, v in extra.items()}}


def log_cell(tracker: Tracker, parent: str, plan: Plan, c: CellResult) -> str:
    """A scored cell's run; its final shard counts too, so a view rebuilt from the store (`orchestrator sync`
    after a tracking outage) ends where the live updates of a fault-free run end."""
    cell = plan.cell(c.cell_id)
    n = float(len(plan.shards_of(c.cell_id)))
    counts = {"shards_done": {"mean": n}, "shards_failed": {"mean": 0.0}, "shards_total": {"mean": n}}
    return tracker.log_cell(parent, c.cell_id, cell.label, cell_params(plan, cell), {**cell_metrics(c), **counts})


def log_curves(tracker: Tracker, parent: str, cvs: list[Curve], x_name: str, plots: list[Path] = (),
               keys: set[str] | None = None, verdicts: Sequence[Any] = ()) -> None:
    """One child run per task x prompt style (x scale), each metric at step = the curve's x; `keys` limits which.

    Scaling curves are read on a log x axis: each point also logs `log10_<x>` (pick it as the chart's x axis in
    the MLflow UI). `verdicts` (analysis.verdicts) go on the run as tags `orchestrator.verdict.<metric>` and as
    its description, with their reasons.
    """
    by_key: dict[str, list[Curve]] = {}
    for cv in cvs:
        if keys is None or cv.key in keys:
            by_key.setdefault(cv.key, []).append(cv)
    plot_by_key = {p.stem.replace("__", "/", 1): p for p in plots}
    for key, group in sorted(by_key.items()):
        if any(x > MAX_MLFLOW_STEP for cv in group for x in cv.x):
            log.warning("curve %s: %s exceeds MLflow's int64 step; its chart run is not logged", key, x_name)
            continue
        steps: dict[int, dict[str, float]] = {}
        for cv in group:
            for x, y, lo, hi in zip(cv.x, cv.y, cv.lo, cv.hi, strict=True):
                d = steps.setdefault(int(x), {})
                d[cv.metric] = y
                d[f"{cv.metric}_ci_lo"] = lo
                d[f"{cv.metric}_ci_hi"] = hi
                if x > 0:
                    d[f"log10_{x_name}"] = math.log10(x)
        task, prompt = key.split("/", 1)
        mine = [v for v in verdicts if f"{v.task}/{v.prompt}" == key]
        tags = {f"orchestrator.verdict.{v.metric}": f"{v.label} ({v.confidence})" for v in mine}
        if mine:
            tags["mlflow.note.content"] = (f"Verdicts for {task} / {prompt} against {x_name}:\n\n" + "\n".join(
                f"- **{v.metric}**: {v.label} ({v.confidence}): {v.reason}" for v in mine))[:5000]
        # one curve run per task x prompt x scale: a run's history never mixes two x axes
        run_key = key if x_name == "params" else f"{key}@{x_name}"
        tracker.log_curve(parent, run_key, f"curve {run_key}", {"task": task, "prompt_style": prompt, "x": x_name},
                          sorted(steps.items()), [plot_by_key[key]] if key in plot_by_key else [], tags)


class LiveView:
    """Keeps the MLflow view current while shards land (driver side); see the module docstring."""

    def __init__(self, cfg: Any, plan: Plan, tasks: dict, store: Any, done: set[str], code: str, cache: Any = None):
        from orchestrator.scoring import metric_info

        self.cfg, self.plan, self.tasks, self.store = cfg, plan, tasks, store
        self.cache = cache  # a CellCache: cells scored here are not read again by the sweep's final record
        self.done = set(done)
        # cell -> its shards not done yet: a landing shard costs O(1), not a pass over its cell's shards
        self.missing: dict[str, int] = {}
        for s in plan.shards:
            if s.id not in self.done:
                self.missing[s.cell_id] = self.missing.get(s.cell_id, 0) + 1
        self.failed: dict[str, str] = {}
        self.interval = float(cfg.tracking.live_interval)
        self.info = metric_info(list(cfg.metrics.names))
        self.cell_runs: dict[str, str] = {}
        self.dirty: set[str] = set()  # cells with news since the last flush
        self.to_score: set[str] = set()  # cells whose last shard landed since the last flush
        self.scored: dict[str, CellResult] = {}
        self.last = 0.0
        self.retry_at = 0.0  # after a failed flush: not before this time (monotonic)
        self.backoff = RETRY_FIRST_S
        self.failures = 0
        self.tracker = Tracker(cfg.tracking.uri, cfg.tracking.experiment or plan.sweep_id)
        self.parent = open_parent(self.tracker, cfg, plan, code)
        self.tracker.set_status(self.parent, "RUNNING")
        self._progress()

    # -- events from the executor (driver thread) ---------------------------------------------------------------
    def shard_done(self, shard: Shard, outcome: Any = None) -> None:
        if shard.id not in self.done:
            self.done.add(shard.id)
            self.missing[shard.cell_id] = self.missing.get(shard.cell_id, 1) - 1
        self.failed.pop(shard.id, None)
        self.dirty.add(shard.cell_id)
        if self.missing.get(shard.cell_id, 0) <= 0:
            self.to_score.add(shard.cell_id)
        self.flush()

    def shard_failed(self, shard: Shard, error: str) -> None:
        self.failed[shard.id] = error
        self.dirty.add(shard.cell_id)
        self.flush()

    # -- writing ------------------------------------------------------------------------------------------------
    def flush(self, force: bool = False) -> None:
        """Send what changed, at most every `interval` seconds (when forced, also during a backoff).

        Returns whether MLflow is up to date. On a failure the unsent changes are kept for the next try,
        after a backoff that doubles with each failure.
        """
        now = time.monotonic()
        if not force and (now - self.last < self.interval or now < self.retry_at):
            return False
        self.last = now
        dirty, to_score = set(self.dirty), set(self.to_score)
        try:
            self._flush()
        except Exception as e:  # the shards go on; what was not sent is sent on a later flush or from the store
            self.dirty |= dirty
            self.to_score |= to_score
            self.failures += 1
            self.retry_at = time.monotonic() + self.backoff
            log.warning("live MLflow update failed (%s: %s); the shards go on, retrying in %.0f s",
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "", self.backoff)
            self.backoff = min(self.backoff * 2, RETRY_MAX_S)
            return False
        self.retry_at, self.backoff = 0.0, RETRY_FIRST_S
        return True

    @property
    def broken(self) -> bool:
        """The last flush failed (MLflow unreachable or refusing); cleared by the next one that succeeds."""
        return self.retry_at > 0.0

    def _flush(self) -> None:
        from orchestrator.scoring import score_cells

        dirty, self.dirty = self.dirty, set()
        for cid in sorted(dirty):
            if cid not in self.cell_runs:
                cell = self.plan.cell(cid)
                self.cell_runs[cid] = self.tracker.cell_run(self.parent, cid, cell.label, cell_params(self.plan, cell))
            shards = self.plan.shards_of(cid)
            self.tracker.progress(self.cell_runs[cid], {
                "shards_done": sum(s.id in self.done for s in shards),
                "shards_failed": sum(s.id in self.failed for s in shards),
                "shards_total": len(shards),
            }, step=sum(s.id in self.done for s in shards))
        ready, self.to_score = self.to_score, set()
        if ready:
            for c in score_cells(self.plan, self.store, self.tasks, self.cfg.metrics, cell_ids=ready, done=self.done,
                                 cache=self.cache):
                log_cell(self.tracker, self.parent, self.plan, c)
                self.scored[c.cell_id] = c
            keys = {f"{self.plan.cell(cid).task}/{self.plan.cell(cid).prompt.name}" for cid in ready}
            log_curves(self.tracker, self.parent, curves(list(self.scored.values()), self.info, x=self.cfg.analysis.x),
                       self.cfg.analysis.x, keys=keys)
        self._progress()

    def _progress(self) -> None:
        counts = {"shards_done": len(self.done & {s.id for s in self.plan.shards}),
                  "shards_failed": len(self.failed), "shards_total": len(self.plan.shards)}
        self.tracker.progress(self.parent, counts, step=int(counts["shards_done"]))

    def close(self, interrupted: bool = False) -> None:
        """Final counts; a cell run opened here whose shards are not all done ends FAILED (KILLED if interrupted)."""
        if not self.flush(force=True):
            return
        try:
            for cid, run_id in self.cell_runs.items():
                shards = self.plan.shards_of(cid)
                n_done = sum(s.id in self.done for s in shards)
                if n_done < len(shards):
                    self.tracker.set_status(run_id, "KILLED" if interrupted else "FAILED",
                                            {"orchestrator.partial": f"{n_done}/{len(shards)} shards"})
        except Exception as e:
            log.warning("could not close the live MLflow runs (%s)", type(e).__name__)
