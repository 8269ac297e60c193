"""From stored records to per-cell scores: the step between the store and the curves.

Reads each finished cell's shards and applies the metric library; runs no
model, so `rescore` and `report` can rebuild every number from the store.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from orchestrator.analysis.curves import CellResult
from orchestrator.analysis.scores import bigbench_normalized
from orchestrator.config import MetricsConfig
from orchestrator.metrics import MetricContext, get, summarise
from orchestrator.partials import counts, partials, pooled_scores
from orchestrator.passes import ALL, FIELDS, describe, of_fields
from orchestrator.plan import Cell, Plan
from orchestrator.store import SweepStore
from orchestrator.tasks.task import Task

if TYPE_CHECKING:
    from orchestrator.cellcache import CellCache

log = logging.getLogger(__name__)

# metrics a store written before RECORD_VERSION 2 cannot give (or gives wrongly for several targets)
_NEED_VERSION_2 = ("token_edit_distance", "target_token_prob")


def import_metric_modules(modules: list[str]) -> None:
    """Import the user's metric modules so their @metric definitions register by name."""
    from orchestrator.config import ConfigError

    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise ConfigError(
                f"metrics.modules names {mod!r}, which cannot be imported ({e}); put it on PYTHONPATH"
            ) from e


def check_metric_names(metrics: MetricsConfig) -> None:
    """Unknown metric names fail before any shard runs, with the list of known ones."""
    from orchestrator.config import ConfigError
    from orchestrator.metrics import available

    import_metric_modules(list(metrics.modules))
    unknown = [n for n in metrics.names if n not in available()]
    if unknown:
        raise ConfigError(f"metrics.names has unknown metric(s) {unknown}; known: {', '.join(sorted(available()))}")


_NEEDS_CHOICES = {"choice_logprobs", "choice_scores"}


def check_metrics_apply(names: list[str], tasks: dict[str, Task], prompts: dict[str, Any]) -> None:
    """A requested metric that no cell of the sweep can give is refused before work, instead of being silently
    absent from every cell: option metrics need a task with options, output metrics a style that generates."""
    from orchestrator.config import ConfigError

    has_choices = {n: t.has_choices for n, t in tasks.items()}
    generates = {p: cfg.style != "multiple_choice" for p, cfg in prompts.items()}
    for name in names:
        needs = set(get(name).needs)
        if any((not needs & _NEEDS_CHOICES or has_choices[t]) and ("generated" not in needs or generates[p])
               for t in tasks for p in prompts):
            continue
        if needs & _NEEDS_CHOICES and not any(has_choices.values()):
            why = f"it scores answer options, and none of the tasks ({', '.join(sorted(tasks))}) has any"
        elif "generated" in needs and not any(generates.values()):
            why = (f"it reads generated text, and every prompt style ({', '.join(sorted(prompts))}) is "
                   "multiple_choice, which generates nothing")
        else:
            why = "no task x prompt style pair has both the options and the generated text it reads"
        raise ConfigError(f"metrics.names has {name!r}, which no cell of this sweep can give: {why}; drop it from "
                          "metrics.names, or add a task or prompt style it applies to")


def metric_info(names: list[str]) -> dict[str, dict[str, object]]:
    """Each metric's kind and direction, for curves, plots and verdicts."""
    out = {}
    for n in names:
        m = get(n)
        out[n] = {"kind": m.kind, "higher_is_better": m.higher_is_better}
    return out


def score_cells(plan: Plan, store: SweepStore, tasks: dict[str, Task], metrics: MetricsConfig,
                cell_ids: Iterable[str] | None = None,
                done: set[str] | dict[str, frozenset[str]] | None = None,
                cache: CellCache | None = None) -> list[CellResult]:
    """Scores of every cell (or of `cell_ids`) whose shards are all in the store (others are left out).

    With `cache` (orchestrator.cellcache), a cell whose shards, metrics and settings are unchanged since it
    was last scored is taken from the store's cache, reading no shard; others are scored from their shards'
    partials (orchestrator.partials), reading only the shards with none kept, and cached.

    `done` is the store's finished shard ids (or `store.shard_passes()`) when the caller already listed them.
    A metric is scored in a cell only where every shard of the cell holds the passes it needs
    (`orchestrator.passes`): never a mean over the examples that happen to have them.
    """
    passes = done if isinstance(done, dict) else store.shard_passes()
    done = set(passes) if done is None else done
    wanted = None if cell_ids is None else set(cell_ids)
    results = []
    lacking: dict[str, int] = {}  # metric -> cells whose shards lack a pass it needs
    for cell in plan.cells:
        if wanted is not None and cell.id not in wanted:
            continue
        ids = [s.id for s in plan.shards_of(cell.id)]
        if not ids or not all(i in done for i in ids):
            continue
        held = frozenset.intersection(*(passes.get(i, ALL) for i in ids))
        names = [n for n in metrics.names if metric_passes(n) <= held]
        for n in metrics.names:
            if n not in names:
                lacking[n] = lacking.get(n, 0) + 1
        task = tasks[cell.task]
        key = cache.key(cell, ids, names, task) if cache is not None else None
        hit = cache.get(cell, key) if cache is not None else None
        if hit is not None:  # the cache stores scores with sorted keys: give them back in metrics.names's order
            results.append(replace(hit, scores={n: hit.scores[n] for n in names if n in hit.scores}))
            continue
        ctx = MetricContext(output_regex=task.output_regex, subset_k=metrics.subset_k, seed=metrics.bootstrap_seed)
        results.append(_score_cell(cell, ids, names, ctx, store, metrics, cache))
        if cache is not None:
            cache.put(cell, key, results[-1])
    for n, k in sorted(lacking.items()):
        log.warning("metric %s is left out of %d cell(s): their shards hold no %s (the run's metrics did not need "
                    "it); `orchestrator run` with %s in metrics.names computes it", n, k,
                    describe(metric_passes(n)), n)
    return results


def _score_cell(cell: Cell, ids: list[str], names: list[str], ctx: MetricContext, store: SweepStore,
                metrics: MetricsConfig, cache: CellCache | None) -> CellResult:
    """One complete cell's scores. Poolable metrics are made from its shards' partials (orchestrator.partials):
    those `cache` kept, for shards unchanged since, and those of the shards read now, so a resume that added a
    shard reads that shard only. A metric that needs the whole cell at once makes every shard be read."""
    pooled = [n for n in names if get(n).poolable]
    whole = [n for n in names if n not in pooled]
    kept = cache.parts(cell, pooled, ctx) if cache is not None and not whole else {}
    todo = [sid for sid in ids if sid not in kept]
    frame = store.read_shards(todo) if todo else pd.DataFrame()
    fresh = partials(frame, todo, pooled, ctx)
    if len(fresh) < len(todo):  # records without shard ids (an old store): the cell as one piece, nothing kept
        if kept:
            frame = store.read_shards(ids)
        parts = list(partials(frame.assign(shard_id="*"), ["*"], pooled, ctx).values())
    else:
        parts = [kept[sid] if sid in kept else fresh[sid] for sid in ids]
        if cache is not None and not whole and todo:
            _keep(cache, cell, pooled, ctx, {**kept, **fresh}, ids)
    old = sum(p.old for p in parts)
    if old:
        _warn_old_records(old, cell.label, list(metrics.names))
    summary = pooled_scores(parts, pooled, ctx, metrics.bootstrap_samples, metrics.bootstrap_seed)
    if whole:
        summary.update(summarise(whole, frame.to_dict("records"), ctx, metrics.bootstrap_samples,
                                 metrics.bootstrap_seed))
    scores = {}
    for name in names:
        s = summary[name]
        if s.n == 0 or not math.isfinite(s.mean):
            continue  # metric does not apply to this task/prompt (e.g. Brier without options)
        best = get(name).best
        scores[name] = {"mean": s.mean, "lo": s.lo, "hi": s.hi, "n": float(s.n), "chance": s.chance,
                        "best": best, "normalized": bigbench_normalized(s.mean, s.chance, best)}
    m = cell.model
    return CellResult(cell_id=cell.id, model=m.name, params=m.params, task=cell.task, prompt=cell.prompt.name,
                      scores=scores, non_embedding_params=m.non_embedding_params, train_flops=m.train_flops,
                      train_step=m.train_step, **counts(parts))


def _keep(cache: CellCache, cell: Cell, names: list[str], ctx: MetricContext, parts: dict, ids: list[str]) -> None:
    """`cache.put_parts`, as a cache: a store that refuses it costs the next resume a read of the whole cell."""
    try:
        cache.put_parts(cell, names, ctx, parts, ids)
    except Exception as e:  # noqa: BLE001
        log.warning("cell %s: shard partials not kept (%s: %s)", cell.label, type(e).__name__, e)


def keep_partials(plan: Plan, store: SweepStore, tasks: dict[str, Task], metrics: MetricsConfig,
                  done: dict[str, frozenset[str]], cache: CellCache) -> int:
    """Keep the partials of the finished shards of incomplete cells (a run that ended with failed shards), so
    that the resume that completes them reads only the shards it adds. Returns the number of shards whose
    partials it kept. A cache: a shard that cannot be read here is left to the scoring that needs it."""
    kept_n = 0
    for cell in plan.cells:
        ids = [s.id for s in plan.shards_of(cell.id)]
        have = [sid for sid in ids if sid in done and cache.checksums.get(sid)]
        if not have or all(sid in done for sid in ids):
            continue
        held = frozenset.intersection(*(done[sid] for sid in have))
        names = [n for n in metrics.names if metric_passes(n) <= held]
        if not names or not all(get(n).poolable for n in names):
            continue
        task = tasks[cell.task]
        ctx = MetricContext(output_regex=task.output_regex, subset_k=metrics.subset_k, seed=metrics.bootstrap_seed)
        kept = cache.parts(cell, names, ctx)
        todo = [sid for sid in have if sid not in kept]
        if not todo:
            continue
        try:
            frame = store.read_shards(todo)
            fresh = partials(frame, todo, names, ctx)
            if len(fresh) == len(todo):
                cache.put_parts(cell, names, ctx, {**kept, **fresh}, ids)
                kept_n += len(todo)
        except Exception as e:  # noqa: BLE001 - a damaged shard is quarantined and runs again on the resume
            log.warning("cell %s: partials of its finished shards not kept (%s: %s)", cell.label,
                        type(e).__name__, e)
    return kept_n


def metric_passes(name: str) -> frozenset[str]:
    """The inference passes the registered metric `name` needs (`orchestrator.passes`)."""
    return of_fields(get(name).needs)


def check_passes_held(names: list[str], plan: Plan, store: SweepStore) -> None:
    """A rescore asking for a metric that no stored shard can give (its pass never ran) is refused, saying how to
    compute it, instead of scoring nothing."""
    from orchestrator.config import ConfigError

    held = store.shard_passes()
    sets = {held[s.id] for s in plan.shards if s.id in held}
    if not sets:
        return
    for name in names:
        need = metric_passes(name)
        if not any(need <= p for p in sets):
            have = frozenset().union(*sets)
            if not set(get(name).needs) & set().union(*FIELDS.values()):
                raise ConfigError(
                    f"metrics.names has {name!r}, which declares no record field it reads (`needs`), so it may read "
                    f"any; this sweep's shards hold only {describe(have)} (the metrics it ran with needed no more). "
                    f"Declare what it reads, e.g. `@metric({name!r}, ..., needs=(\"generated\",))` for the "
                    "generated answer or `needs=(\"target_logprobs\",)`, or run the sweep again with it in "
                    "metrics.names to compute every pass")
            raise ConfigError(
                f"metrics.names has {name!r}, which needs {describe(need)}; this sweep's shards hold only "
                f"{describe(have)} (the metrics it ran with needed no more). Compute it by running the sweep again "
                f"with {name!r} in metrics.names (`orchestrator run ... metrics.names=[..., {name}]` runs its shards "
                "again with that pass), or leave it out of this rescore")


def _warn_old_records(old: int, label: str, names: list[str]) -> None:
    """Say which metrics records from an older store cannot give, and how to get them."""
    affected = [n for n in names if n in _NEED_VERSION_2]
    if not affected or not old:
        return
    log.warning(
        "cell %s: %d records were written before record version 2 (no answer/target token ids, no "
        "truncation flags): token_edit_distance is NaN for them, target_token_prob for those with several "
        "targets (%s requested); rerun the cell (delete its shards, then `orchestrator run`) to get them",
        label, old, ", ".join(affected))
