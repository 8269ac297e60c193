"""Incremental rerun (orchestrator.cellcache): verified shard files are trusted by name and size, scored cells are
reused while their shards, metrics and settings are unchanged, and anything that changes one is noticed.

The store is real (a local folder) and its shards real records, made by the echo backend (no model)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from orchestrator.backends.echo import EchoBackend
from orchestrator.cellcache import CELLS, INDEX, CellCache, VerifiedIndex
from orchestrator.config import load
from orchestrator.inference import run_shard
from orchestrator.scoring import score_cells
from orchestrator.sweep import prepare


def _sweep(tmp_path, *more: str):
    """Two cells (zero-shot, three-shot) of 6 examples, 3 shards each, every shard written to the store."""
    cfg = load(["experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", "tasks.add_2.n=6",
                "prompt=[zero_shot,three_shot]", "sweep.shard_size=2", "backend.name=echo",
                f"storage.root={tmp_path / 'store'}", "tracking.enabled=false", *more])
    plan, tasks, store = prepare(cfg)
    backend = EchoBackend(None, None, cfg.backend)
    for s in plan.shards:
        cell = plan.cell(s.cell_id)
        store.write_shard(s.id, run_shard(backend, tasks[cell.task], cell, s))
    return cfg, plan, tasks, store


def _count(monkeypatch, store, method: str) -> list[str]:
    """Shard ids passed to `store.<method>` from now on (the real method still runs)."""
    seen: list[str] = []
    real = getattr(store, method)

    def spy(ids, *args, **kw):
        ids = list(ids) if not isinstance(ids, str) else [ids]
        seen.extend(ids)
        return real(ids if method != "_check_footer" else ids[0], *args, **kw)

    monkeypatch.setattr(store, method, spy)
    return seen


def _verify(plan, store) -> list[str]:
    return VerifiedIndex.load(store).verify(store.done() & {s.id for s in plan.shards},
                                            {s.id: s.size for s in plan.shards})


def _score(cfg, plan, tasks, store, cache: CellCache | None):
    return score_cells(plan, store, tasks, cfg.metrics, cache=cache)


def _as_json(results) -> str:
    return json.dumps(sorted((asdict(r) for r in results), key=lambda d: d["cell_id"]), sort_keys=True)


def test_a_rerun_with_nothing_new_checks_no_footer_reads_no_shard_and_gives_the_same_scores(tmp_path, monkeypatch):
    cfg, plan, tasks, store = _sweep(tmp_path)
    footers = _count(monkeypatch, store, "_check_footer")
    assert _verify(plan, store) == [] and len(footers) == len(plan.shards)
    fresh = _score(cfg, plan, tasks, store, None)
    first = CellCache(store, cfg.metrics)
    assert _as_json(_score(cfg, plan, tasks, store, first)) == _as_json(fresh)
    assert (first.hits, first.misses) == (0, 2) and store.has(f"{CELLS}/{plan.cells[0].id}.json")

    footers.clear()
    assert _verify(plan, store) == [] and footers == []  # trusted: same name and size as when checked
    reads = _count(monkeypatch, store, "read_shards")
    again = CellCache(store, cfg.metrics)
    assert _as_json(_score(cfg, plan, tasks, store, again)) == _as_json(fresh)
    assert (again.hits, again.misses) == (2, 0) and reads == []


def test_a_resume_that_adds_one_shard_reads_only_that_shard_and_rescores_only_its_cell(tmp_path, monkeypatch):
    cfg, plan, tasks, store = _sweep(tmp_path)
    _verify(plan, store)
    _score(cfg, plan, tasks, store, CellCache(store, cfg.metrics))
    lost = plan.shards[0]
    store.fs.rm(f"{store._path}/shards/{lost.id}.parquet")
    _verify(plan, store)  # a run that starts now: the missing shard's entry is dropped before it runs again
    assert lost.id not in VerifiedIndex.load(store).entries
    cell = plan.cell(lost.cell_id)
    rows = run_shard(EchoBackend(None, None, cfg.backend), tasks[cell.task], cell, lost)
    store.write_shard(lost.id, [{**r, "shard_seconds": 0.25} for r in rows])  # run again: its provenance differs

    footers = _count(monkeypatch, store, "_check_footer")
    _verify(plan, store)  # the next run checks the new file only
    assert footers == [lost.id]
    reads = _count(monkeypatch, store, "read_shards")
    cache = CellCache(store, cfg.metrics)
    results = _score(cfg, plan, tasks, store, cache)
    assert (cache.hits, cache.misses) == (1, 1) and len(results) == 2
    assert reads == [lost.id]  # its cell's other shards give their kept partials (tests/test_partials.py)
    assert _as_json(results) == _as_json(_score(cfg, plan, tasks, store, None))


@pytest.mark.parametrize("change", ["metrics", "bootstrap", "shard"])
def test_what_changes_a_cell_is_a_miss(tmp_path, change):
    cfg, plan, tasks, store = _sweep(tmp_path)
    _verify(plan, store)
    _score(cfg, plan, tasks, store, CellCache(store, cfg.metrics))
    if change == "metrics":
        cfg = replace(cfg, metrics=replace(cfg.metrics, names=["exact_match"]))
    elif change == "bootstrap":
        cfg = replace(cfg, metrics=replace(cfg.metrics, bootstrap_samples=cfg.metrics.bootstrap_samples + 1))
    else:  # a shard of the first cell written again with other rows: another size, so checked and keyed anew
        s = plan.shards_of(plan.cells[0].id)[0]
        rows = run_shard(EchoBackend(None, None, cfg.backend), tasks["add_2"], plan.cells[0], s)
        store.write_shard(s.id, [{**r, "generation": r["generation"] + "x" * 50} for r in rows])
        _verify(plan, store)
    cache = CellCache(store, cfg.metrics)
    _score(cfg, plan, tasks, store, cache)
    assert cache.misses == (1 if change == "shard" else 2) and cache.hits == (1 if change == "shard" else 0)


def test_a_damaged_file_is_checked_again_and_quarantined_though_it_was_verified(tmp_path):
    cfg, plan, tasks, store = _sweep(tmp_path)
    _verify(plan, store)
    victim = plan.shards[1]
    path = f"{store._path}/shards/{victim.id}.parquet"
    with store.fs.open(path, "rb") as f:
        data = f.read()
    with store.fs.open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # truncated: another size, so no longer trusted
    assert _verify(plan, store) == [victim.id]
    assert victim.id not in store.done() and victim.id not in VerifiedIndex.load(store).entries


def test_a_garbled_index_means_check_everything(tmp_path, monkeypatch):
    cfg, plan, tasks, store = _sweep(tmp_path)
    store.write_bytes(INDEX, b"{not json")
    footers = _count(monkeypatch, store, "_check_footer")
    assert _verify(plan, store) == [] and len(footers) == len(plan.shards)
    assert len(VerifiedIndex.load(store).entries) == len(plan.shards)


def test_an_edited_metric_module_is_a_miss_even_under_the_same_code_version(tmp_path, monkeypatch):
    """A user's metric edited between two runs (code version unchanged: their module is not ours) must be
    recomputed, never served from the cache."""
    import importlib
    import sys

    from orchestrator.metrics.registry import _REGISTRY

    (tmp_path / "cache_metric_mod.py").write_text(
        "from orchestrator.metrics import metric\n\n"
        "@metric('cache_len', kind='continuous', higher_is_better=True, needs=('generated',), replace=True)\n"
        "def cache_len(records, ctx):\n    return [float(len(r['answer'])) for r in records]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("cache_metric_mod")
        cfg, plan, tasks, store = _sweep(tmp_path, "metrics.names=[exact_match,cache_len]",
                                         "metrics.modules=[cache_metric_mod]")
        _verify(plan, store)
        first = _score(cfg, plan, tasks, store, CellCache(store, cfg.metrics))
        (tmp_path / "cache_metric_mod.py").write_text(
            (tmp_path / "cache_metric_mod.py").read_text().replace("float(len(r['answer']))", "2.0"))
        importlib.reload(sys.modules["cache_metric_mod"])
        cache = CellCache(store, cfg.metrics)
        again = _score(cfg, plan, tasks, store, cache)
        assert (cache.hits, cache.misses) == (0, 2)
        assert [c.scores["cache_len"]["mean"] for c in again] == [2.0, 2.0]
        assert [c.scores["cache_len"]["mean"] for c in first] != [2.0, 2.0]
    finally:
        _REGISTRY.pop("cache_len", None)
        sys.modules.pop("cache_metric_mod", None)


@pytest.mark.integration
def test_cells_scored_while_the_sweep_runs_are_not_read_again_by_its_final_record(tmp_path, tiny_conf, monkeypatch):
    """Live tracking scores each cell as its last shard lands; the shards written in this run enter the verified
    index as they land, so the final record finds those cells in the cache: every shard is read once in all."""
    from orchestrator import sweep
    from orchestrator.execute import shutdown
    from orchestrator.store import SweepStore
    from tests.conftest import overrides_for

    cfg = load(overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot,three_shot]",
                             "tasks.add_2.n=12", "sweep.shard_size=4", "sweep.name=once", "backend.name=echo",
                             "cluster.num_cpus=2", "tracking.live_interval=0"))
    reads: list[str] = []
    real = SweepStore.read_shards

    def spy(self, ids, *args, **kw):
        ids = list(ids)
        reads.extend(ids)
        return real(self, ids, *args, **kw)

    monkeypatch.setattr(SweepStore, "read_shards", spy)
    try:
        result = sweep.run(cfg, progress=False)
    finally:
        shutdown()
    shard_ids = sorted(s.id for s in result.plan.shards)
    assert result.failed == {} and len(result.cells) == 4 and len(shard_ids) == 12
    assert sorted(reads) == shard_ids  # each read once (by the live view), none by the record
    store = SweepStore(str(tmp_path / "store"), "once")
    assert sorted(VerifiedIndex.load(store).entries) == shard_ids  # as they landed: no footer to check next time
    assert sorted(p.split("/")[-1] for p in store.fs.ls(f"{store._path}/{CELLS}")) == sorted(
        f"{c.id}.json" for c in result.plan.cells)
    fresh = score_cells(result.plan, store, prepare(cfg)[1], cfg.metrics)  # no cache: read and scored again
    assert _as_json(fresh) == _as_json(result.cells)
    # served from the cache, a cell's metrics keep metrics.names's order (cells.csv's columns; CI caught sorted ones)
    assert [list(c.scores) for c in result.cells] == [list(c.scores) for c in fresh]
    assert list(result.cells[0].scores) == [n for n in cfg.metrics.names if n in result.cells[0].scores]
