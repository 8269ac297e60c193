"""Incremental scoring (orchestrator.partials, cellcache's shard partials): a resume that adds shards to a cell
reads those shards only, and the cell's numbers are exactly those of scoring every record again.

The store is real (a local folder) and its shards real records (the echo backend's, with seeded random answers
and log-probabilities, so every metric has something to score and intervals are not degenerate)."""

from __future__ import annotations

import json
import random
from dataclasses import asdict

import pytest

from orchestrator.backends.echo import EchoBackend
from orchestrator.cellcache import CELLS, PARTS, CellCache, VerifiedIndex
from orchestrator.config import load
from orchestrator.inference import run_shard
from orchestrator.metrics import get
from orchestrator.scoring import keep_partials, score_cells
from orchestrator.sweep import prepare

ALL = ["exact_match", "exact_str_match", "multiple_choice_grade", "subset_accuracy", "token_edit_distance",
       "char_edit_distance", "target_logprob", "target_token_prob", "brier_score", "correct_option_prob",
       "calibration_ece", "bleu", "rouge1", "rouge2", "rougeLsum"]


def _rows(backend, tasks, cell, shard, seed: int) -> list[dict]:
    """The echo backend's records of `shard`, with seeded random answers and log-probabilities."""
    rng = random.Random(seed)
    out = []
    for r in run_shard(backend, tasks[cell.task], cell, shard):
        r = dict(r)
        if r["generated"] and r["targets"]:
            answer = r["targets"][0] if rng.random() < 0.4 else str(rng.randint(0, 199))
            r.update(generation=answer, answer=answer, answer_token_ids=[ord(c) for c in answer])
        if r["target_logprobs"]:
            r["target_logprobs"] = [-rng.uniform(0.1, 9.0) for _ in r["target_logprobs"]]
            r["target_token_logprobs"] = [-rng.uniform(0.0, 4.0) for _ in r["target_token_logprobs"]]
        if r["choice_logprobs"]:
            r["choice_logprobs"] = [-rng.uniform(0.1, 9.0) for _ in r["choice_logprobs"]]
        out.append(r)
    return out


def _sweep(tmp_path, *more: str, seed: int = 0, skip: int | None = None):
    """add_2 (40 examples) zero-shot and multiple-choice, every metric, 5 shards a cell; all written but `skip`."""
    cfg = load(["experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", "tasks.add_2.n=40",
                "prompt=[zero_shot,mc]", "sweep.shard_size=8", "backend.name=echo", f"metrics.names=[{','.join(ALL)}]",
                f"storage.root={tmp_path / 'store'}", "tracking.enabled=false", *more])
    plan, tasks, store = prepare(cfg)
    backend = EchoBackend(None, None, cfg.backend)
    for i, s in enumerate(plan.shards):
        if i != skip:
            store.write_shard(s.id, _rows(backend, tasks, plan.cell(s.cell_id), s, seed * 1000 + i))
    return cfg, plan, tasks, store, backend


def _reads(monkeypatch, store) -> list[str]:
    seen: list[str] = []
    real = store.read_shards

    def spy(ids, *args, **kw):
        ids = list(ids)
        seen.extend(ids)
        return real(ids, *args, **kw)

    monkeypatch.setattr(store, "read_shards", spy)
    return seen


def _verify(plan, store) -> None:
    assert VerifiedIndex.load(store).verify(store.done() & {s.id for s in plan.shards},
                                            {s.id: s.size for s in plan.shards}) == []


def _run_again(plan, tasks, store, backend, shard, seed: int) -> None:
    """`shard` lost and run again with other answers, as a run sees it (each run starts by verifying the store)."""
    store.fs.rm(f"{store._path}/shards/{shard.id}.parquet")
    _verify(plan, store)
    store.write_shard(shard.id, _rows(backend, tasks, plan.cell(shard.cell_id), shard, seed))
    _verify(plan, store)


def _as_json(results) -> str:
    return json.dumps(sorted((asdict(r) for r in results), key=lambda d: d["cell_id"]), sort_keys=True)


def _drop_cells(store) -> None:
    """Forget the scored cells (not the partials): the next scoring must pool."""
    store.fs.rm(f"{store._path}/{CELLS}", recursive=True)


def test_every_built_in_metric_is_poolable():
    assert [n for n in ALL if not get(n).poolable] == []


def test_scores_pooled_from_kept_partials_equal_scoring_every_record(tmp_path, monkeypatch):
    cfg, plan, tasks, store, _ = _sweep(tmp_path)
    _verify(plan, store)
    fresh = score_cells(plan, store, tasks, cfg.metrics)  # no cache: every record
    assert sorted(len(c.scores) for c in fresh) == [6, len(ALL)]  # mc: option and target metrics only
    assert all(c.scores["target_logprob"]["lo"] < c.scores["target_logprob"]["hi"] for c in fresh)  # not degenerate
    assert 0 < next(c for c in fresh if c.prompt == "zero_shot").scores["exact_match"]["mean"] < 1
    first = score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
    assert _as_json(first) == _as_json(fresh)
    assert sorted(p.split("/")[-1] for p in store.fs.ls(f"{store._path}/{PARTS}")) == sorted(
        f"{c.id}.npz" for c in plan.cells)
    _drop_cells(store)
    reads = _reads(monkeypatch, store)
    pooled = score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
    assert reads == [] and _as_json(pooled) == _as_json(fresh)


def test_a_shard_run_again_is_the_only_one_read_and_the_cell_equals_a_full_rescore(tmp_path, monkeypatch):
    cfg, plan, tasks, store, backend = _sweep(tmp_path)
    _verify(plan, store)
    score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
    victim = plan.shards_of(plan.cells[1].id)[2]
    _run_again(plan, tasks, store, backend, victim, seed=777)  # other answers now
    reads = _reads(monkeypatch, store)
    cache = CellCache(store, cfg.metrics)
    got = score_cells(plan, store, tasks, cfg.metrics, cache=cache)
    assert reads == [victim.id] and (cache.hits, cache.misses) == (1, 1)
    assert _as_json(got) == _as_json(score_cells(plan, store, tasks, cfg.metrics))  # every record, no cache


def test_a_cell_left_incomplete_keeps_its_partials_so_the_resume_reads_only_the_missing_shard(tmp_path, monkeypatch):
    skip = 7  # a shard of the second cell never landed (it failed for good)
    cfg, plan, tasks, store, backend = _sweep(tmp_path, skip=skip)
    _verify(plan, store)
    cache = CellCache(store, cfg.metrics)
    done = store.shard_passes()
    assert len(score_cells(plan, store, tasks, cfg.metrics, done=done, cache=cache)) == 1  # the complete cell
    reads = _reads(monkeypatch, store)
    assert keep_partials(plan, store, tasks, cfg.metrics, done, cache) == 4
    assert len(reads) == 4 and plan.shards[skip].id not in reads
    assert keep_partials(plan, store, tasks, cfg.metrics, done, cache) == 0  # kept: nothing read again

    missing = plan.shards[skip]
    store.write_shard(missing.id, _rows(backend, tasks, plan.cell(missing.cell_id), missing, skip))  # the resume
    _verify(plan, store)
    reads.clear()
    cache = CellCache(store, cfg.metrics)
    resumed = score_cells(plan, store, tasks, cfg.metrics, cache=cache)
    assert reads == [missing.id] and (cache.hits, cache.misses) == (1, 1)
    assert _as_json(resumed) == _as_json(score_cells(plan, store, tasks, cfg.metrics))
    _, wplan, wtasks, wstore, _ = _sweep(tmp_path / "whole")  # the same records written in one go, no cache
    assert _as_json(resumed) == _as_json(score_cells(wplan, wstore, wtasks, cfg.metrics))


def test_partials_of_other_metrics_or_settings_are_not_used(tmp_path, monkeypatch):
    cfg, plan, tasks, store, _ = _sweep(tmp_path)
    _verify(plan, store)
    score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
    _drop_cells(store)
    fewer = load(["experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", "tasks.add_2.n=40",
                  "prompt=[zero_shot,mc]", "sweep.shard_size=8", "backend.name=echo",
                  "metrics.names=[exact_match,subset_accuracy]", "metrics.subset_k=2",
                  f"storage.root={tmp_path / 'store'}", "tracking.enabled=false"]).metrics
    reads = _reads(monkeypatch, store)
    got = score_cells(plan, store, tasks, fewer, cache=CellCache(store, fewer))
    assert sorted(reads) == sorted(s.id for s in plan.shards)  # other metrics and subset_k: read again
    assert _as_json(got) == _as_json(score_cells(plan, store, tasks, fewer))


def test_a_metric_that_needs_the_whole_cell_reads_every_shard_and_is_right(tmp_path, monkeypatch):
    """A user's metric whose chance baseline is a function of all the records (not a record_chance) cannot be
    pooled: its cells read every shard, and their numbers are those of the whole cell."""
    from orchestrator.metrics import metric
    from orchestrator.metrics.registry import _REGISTRY

    def chance(records):
        return 1.0 / max(1, len(records))  # depends on the cell's size: not a mean of per-record values

    @metric("whole_len", kind="continuous", higher_is_better=True, needs=("generated",), chance=chance,
            per_record=True, replace=True)
    def whole_len(records, ctx):
        return [float(len(r["answer"])) for r in records]

    try:
        assert not get("whole_len").poolable
        cfg, plan, tasks, store, backend = _sweep(tmp_path, "metrics.names=[exact_match,whole_len]")
        _verify(plan, store)
        score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
        _drop_cells(store)
        reads = _reads(monkeypatch, store)
        got = score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
        zero_shot = next(c for c in got if c.prompt == "zero_shot")
        assert sorted(reads) == sorted(s.id for s in plan.shards)
        assert zero_shot.scores["whole_len"]["chance"] == pytest.approx(1.0 / 40)  # the cell's 40, not a shard's 8
        assert _as_json(got) == _as_json(score_cells(plan, store, tasks, cfg.metrics))
    finally:
        _REGISTRY.pop("whole_len", None)


@pytest.mark.integration
def test_a_sweep_whose_shard_failed_is_resumed_reading_only_that_shard(tmp_path, monkeypatch):
    """End to end on a real local Ray: a shard fails for good, the run records the other shards' partials, and the
    resume runs that shard and reads it alone; the resumed cells equal scoring every record."""
    from orchestrator import sweep
    from orchestrator.execute import shutdown
    from orchestrator.store import SweepStore

    args = ["experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", "tasks.add_2.n=24", "prompt=[zero_shot,mc]",
            "sweep.shard_size=4", "backend.name=echo", f"storage.root={tmp_path / 'store'}",
            "tracking.enabled=false", f"sweep.output_dir={tmp_path / 'out'}", "sweep.name=heal",
            "cluster.num_cpus=2", "cluster.max_retries=0", f"metrics.names=[{','.join(ALL)}]"]
    cfg = load(args)
    plan, _, _ = prepare(cfg)
    bad = plan.shards_of(plan.cells[0].id)[3]
    monkeypatch.setenv("ORCHESTRATOR_FAULTS", f"error@{bad.id}")
    reads: list[str] = []
    real = SweepStore.read_shards

    def spy(self, ids, *a, **kw):
        ids = list(ids)
        reads.extend(ids)
        return real(self, ids, *a, **kw)

    monkeypatch.setattr(SweepStore, "read_shards", spy)
    try:
        first = sweep.run(cfg, progress=False)
        assert list(first.failed) == [bad.id] and len(first.cells) == 1
        incomplete = [s.id for s in plan.shards_of(bad.cell_id) if s.id != bad.id]
        assert set(incomplete) <= set(reads)  # their partials were kept by the record
        shutdown()  # the local Ray's workers keep the environment they started with
        monkeypatch.delenv("ORCHESTRATOR_FAULTS")
        reads.clear()
        second = sweep.run(load(args), progress=False)
    finally:
        shutdown()
    assert second.failed == {} and second.shards_run == 1 and len(second.cells) == 2
    assert reads == [bad.id]
    store = SweepStore(str(tmp_path / "store"), "heal")
    assert _as_json(second.cells) == _as_json(score_cells(second.plan, store, prepare(load(args))[1], cfg.metrics))


def test_a_users_group_metric_and_record_chance_pool_like_the_built_ins(tmp_path, monkeypatch):
    """README's recipe: @group_metric (per-record stats, groups from the pooled rows) with a record_chance baseline
    is poolable, so a resume reads only the shard it adds, and the numbers equal scoring every record."""
    import numpy as np

    from orchestrator.metrics import group_metric, record_chance
    from orchestrator.metrics.registry import _REGISTRY

    def stats(records, ctx):
        return [(float(r["example_idx"]), float(len(r["answer"]))) for r in records]

    @group_metric("pair_longer", kind="continuous", higher_is_better=True, stats=stats, needs=("generated",),
                  chance=record_chance(lambda r: 1.0 / (1 + len(r["targets"]))), replace=True)
    def pair_longer(rows, ctx):
        """Pairs of consecutive examples (by id): 1 when the second answer is longer."""
        rows = rows[np.argsort(rows[:, 0], kind="stable")]
        return [float(b > a) for a, b in zip(rows[0::2, 1], rows[1::2, 1], strict=False)]

    try:
        assert get("pair_longer").poolable
        cfg, plan, tasks, store, backend = _sweep(tmp_path, "metrics.names=[exact_match,pair_longer]")
        _verify(plan, store)
        score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
        cell = next(c for c in plan.cells if c.prompt.name == "zero_shot")
        victim = plan.shards_of(cell.id)[1]
        _run_again(plan, tasks, store, backend, victim, seed=4242)
        reads = _reads(monkeypatch, store)
        got = score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
        assert reads == [victim.id]
        zero_shot = next(c for c in got if c.prompt == "zero_shot")
        assert zero_shot.scores["pair_longer"]["n"] == 20 and zero_shot.scores["pair_longer"]["chance"] == 0.5
        assert _as_json(got) == _as_json(score_cells(plan, store, tasks, cfg.metrics))
    finally:
        _REGISTRY.pop("pair_longer", None)


@pytest.mark.parametrize("declared", [True, False])
def test_a_users_per_example_metric_pools_only_when_it_declares_per_record(tmp_path, monkeypatch, declared):
    """A plain @metric may score a record from the others (here: the answer's length minus the cell's mean), which
    pooling per shard would get wrong; it is read whole unless it declares per_record=True. The undeclared one's
    numbers equal scoring every record after a shard is replaced; the declared one reads only that shard."""
    from orchestrator.metrics import metric
    from orchestrator.metrics.registry import _REGISTRY

    @metric("centred_len", kind="continuous", higher_is_better=True, needs=("generated",), per_record=declared,
            replace=True)
    def centred_len(records, ctx):
        lengths = [float(len(r["answer"])) for r in records]
        mean = sum(lengths) / max(1, len(lengths))
        return [x - mean if not declared else x for x in lengths]

    try:
        assert get("centred_len").poolable is declared
        cfg, plan, tasks, store, backend = _sweep(tmp_path, "metrics.names=[exact_match,centred_len]")
        _verify(plan, store)
        score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
        cell = next(c for c in plan.cells if c.prompt.name == "zero_shot")
        assert store.has(f"{PARTS}/{cell.id}.npz") is declared
        victim = plan.shards_of(cell.id)[0]
        _run_again(plan, tasks, store, backend, victim, seed=99)
        reads = _reads(monkeypatch, store)
        got = score_cells(plan, store, tasks, cfg.metrics, cache=CellCache(store, cfg.metrics))
        assert sorted(reads) == sorted([victim.id] if declared else [s.id for s in plan.shards_of(cell.id)])
        assert _as_json(got) == _as_json(score_cells(plan, store, tasks, cfg.metrics))
    finally:
        _REGISTRY.pop("centred_len", None)


def test_per_record_is_for_per_example_metrics_only():
    from orchestrator.metrics import metric

    with pytest.raises(ValueError, match="per_record=True is for unit='example'"):
        metric("grouped_wrong", kind="continuous", higher_is_better=True, unit="group", per_record=True)(
            lambda records, ctx: [])
