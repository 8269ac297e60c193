"""The live MLflow view knows a cell is complete from a count per cell (O(1) per landing shard, not a pass over
the cell's shards): complete exactly when its last shard lands, whatever the order, and a shard landing twice
(a retried replica's) is counted once. Real MLflow (a sqlite file), real store."""

from __future__ import annotations

from orchestrator.config import load
from orchestrator.live import LiveView
from orchestrator.sweep import prepare


def test_a_cell_is_ready_to_score_when_its_last_shard_lands(tmp_path):
    cfg = load(["experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", "tasks.add_2.n=6",
                "prompt=[zero_shot,three_shot]", "sweep.shard_size=2", "backend.name=echo",
                f"storage.root={tmp_path / 'store'}", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}",
                "tracking.live_interval=3600"])
    plan, tasks, store = prepare(cfg)
    a, b = (plan.shards_of(c.id) for c in plan.cells)
    live = LiveView(cfg, plan, tasks, store, {a[0].id}, "test")
    live.last = float("inf")  # no flush in this test: only the bookkeeping is looked at
    for s in (a[2], b[0], a[2], b[1]):
        live.shard_done(s)
    assert live.to_score == set() and live.missing == {a[0].cell_id: 1, b[0].cell_id: 1}
    live.shard_done(a[1])
    assert live.to_score == {a[0].cell_id}
    live.shard_done(b[2])
    assert live.to_score == {a[0].cell_id, b[0].cell_id}
