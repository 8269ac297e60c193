"""Many small shards go to a replica several per Ray call (execute.per_call), and healing still works per shard:
a shard that raises inside a group fails alone, a replica killed in the middle of a group loses none of it.
Runs on a real local Ray with the echo backend (no model); faults are real (orchestrator.faults)."""

from __future__ import annotations

from orchestrator.config import load
from orchestrator.execute import MAX_EXAMPLES_PER_CALL, execute, shutdown
from orchestrator.sweep import prepare, worker_store


def _cfg(tmp_path, n: int, *more: str):
    return load(["experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", f"tasks.add_2.n={n}", "prompt=[zero_shot]",
                 "sweep.shard_size=1", "backend.name=echo", f"storage.root={tmp_path / 'store'}",
                 "tracking.enabled=false", "cluster.num_cpus=2", "cluster.max_retries=2", *more])


def test_small_shards_go_several_per_call_and_a_failing_or_killed_one_is_healed_alone(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, 300)
    plan, tasks, store = prepare(cfg)
    bad, killed = plan.shards[5].id, plan.shards[40].id
    monkeypatch.setenv("ORCHESTRATOR_FAULTS", f"error@{bad},kill@{killed}")
    monkeypatch.setenv("ORCHESTRATOR_FAULTS_DIR", str(tmp_path / "faults"))
    landed: list[str] = []
    failed: list[str] = []
    try:
        report = execute(plan, tasks, cfg, set(), worker_store(cfg, plan), lambda s, o: landed.append(s.id),
                         lambda s, f: failed.append(s.id), progress=False)
    finally:
        shutdown()
    assert failed == [bad] and set(report.failed) == {bad}
    assert sorted(landed) == sorted(s.id for s in plan.shards if s.id != bad)  # each landed once
    assert report.completed == len(plan.shards) - 1
    assert report.calls < len(plan.shards) // 2  # grouped (one call per shard without), the tail one by one
    assert store.done() == {s.id for s in plan.shards} - {bad}
    assert (tmp_path / "faults" / f"kill-{killed}").exists()  # the replica really died in that shard's group
    assert MAX_EXAMPLES_PER_CALL > 1
