"""A replica whose model is done goes on to the next model in its own process (cluster.reuse_replicas): fewer
worker processes, each model still loaded once per replica, and the same rows as separate replicas give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator import sweep
from orchestrator.config import load
from orchestrator.execute import ModelWorker, ShardError, shutdown
from orchestrator.plan import Shard
from orchestrator.store import SweepStore
from tests.conftest import overrides_for

pytestmark = pytest.mark.integration

def _rows(tmp_path, name: str, plan) -> pd.DataFrame:
    store = SweepStore(str(tmp_path / "store"), name)
    rows = store.read_shards(sorted(store.done()))
    models = {c.id: c.model.name for c in plan.cells}
    return rows.assign(model=rows["cell_id"].map(models))


def test_one_slot_serves_both_models_with_the_rows_of_separate_replicas(tmp_path, tiny_conf):
    common = ("task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=12", "sweep.shard_size=4", "cluster.num_cpus=1",
              "tracking.enabled=false")
    try:
        reused = sweep.run(load(overrides_for(tmp_path, tiny_conf, *common, "sweep.name=reuse")), progress=False)
        shutdown()
        fresh = sweep.run(load(overrides_for(tmp_path, tiny_conf, *common, "sweep.name=fresh",
                                             "cluster.reuse_replicas=false")), progress=False)
    finally:
        shutdown()
    assert reused.failed == {} and fresh.failed == {} and reused.shards_run == fresh.shards_run == 6

    a, b = _rows(tmp_path, "reuse", reused.plan), _rows(tmp_path, "fresh", fresh.plan)
    # one CPU: one replica at a time. Reused, it is one process that loaded tiny-b (the larger, placed first)
    # and then tiny-a; without reuse each model had a replica (a process) of its own
    assert a["worker"].nunique() == 1, a.groupby("model")["worker"].unique()
    assert b["worker"].nunique() == 2 and b.groupby("model")["worker"].nunique().eq(1).all()
    assert a.groupby(["worker", "model"])["load_seconds"].nunique().eq(1).all()  # each model loaded once in it
    assert a.groupby("model")["load_seconds"].first().nunique() == 2  # and twice in all: two loads, not one
    same = a.sort_values(["model", "example_idx"]).reset_index(drop=True)
    other = b.sort_values(["model", "example_idx"]).reset_index(drop=True)
    assert same[["model", "example_idx", "prompt", "generation"]].equals(
        other[["model", "example_idx", "prompt", "generation"]])
    assert np.allclose(np.concatenate(same["target_logprobs"].tolist()),
                       np.concatenate(other["target_logprobs"].tolist()), rtol=1e-5)

def test_a_replica_refuses_a_shard_of_a_model_it_does_not_hold(tmp_path, tiny_conf):
    cfg = load(overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=4",
                             "tracking.enabled=false"))
    from orchestrator.plan import make_plan
    from orchestrator.sweep import load_tasks

    tasks = load_tasks(cfg)
    plan = make_plan(cfg, tasks)
    a_cell = next(c for c in plan.cells if c.model.name == "tiny-a")
    b_cell = next(c for c in plan.cells if c.model.name == "tiny-b")
    worker = ModelWorker(b_cell.model, cfg.backend, 1)
    shard = Shard("s", a_cell.id, 0, 2)
    with pytest.raises(ShardError, match="holds tiny-b"):
        worker.rows(tasks["add_2"], a_cell, shard)
    assert worker.switch(a_cell.model)["model"] == "tiny-a"
    assert len(worker.rows(tasks["add_2"], a_cell, shard)) == 2
