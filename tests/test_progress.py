"""Progress inside a shard (issue 13): a replica posts how far into its shard it is, and the driver's bar counts
those examples before the shard lands, so a long shard does not leave the bar still.

Real parts: a real tiny transformers model, a real local Ray with a real replica actor and progress board.
"""

from __future__ import annotations

import io

import pytest
import ray
from tqdm import tqdm

from orchestrator import sweep
from orchestrator.config import load
from orchestrator.execute import ModelWorker, ProgressBoard, _Meter, shutdown
from orchestrator.inference import run_shard
from orchestrator.plan import Shard
from tests.conftest import overrides_for


@pytest.fixture()
def planned(tmp_path, tiny_conf):
    cfg = load(overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=20",
                             "sweep.shard_size=20", "sweep.name=prog", "backend.batch_size=4",
                             "tracking.enabled=false"))
    plan, tasks, _ = sweep.prepare(cfg)
    return cfg, plan, tasks


def test_run_shard_reports_a_rising_fraction_that_ends_at_one(planned):
    from orchestrator.backends import load_backend
    from orchestrator.config import ModelFamily, ModelSize

    cfg, plan, tasks = planned
    cell = plan.cells[0]
    shard = plan.shards_of(cell.id)[0]
    backend = load_backend(ModelSize(path=cell.model.path, params=cell.model.params), ModelFamily(family="tiny"),
                           cfg.backend, threads=1)
    seen: list[float] = []
    rows = run_shard(backend, tasks[cell.task], cell, shard, on_progress=seen.append)
    assert len(rows) == 20
    # batch_size 4: five generation batches, then the scoring batches, each reported as it ends
    assert len(seen) >= 7 and seen == sorted(seen)
    assert 0 < seen[0] < 1 and seen[-1] == 1.0
    assert getattr(backend, "on_batch", None) is None  # the hook is taken off again


@pytest.mark.integration
def test_a_replica_posts_its_shard_progress_and_the_meter_counts_it_once(planned):
    cfg, plan, tasks = planned
    cell = plan.cells[0]
    shard = plan.shards_of(cell.id)[0]
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        board = ray.remote(ProgressBoard).options(num_cpus=0).remote()
        worker = ray.remote(ModelWorker).options(num_cpus=1).remote(cell.model, cfg.backend, 1, None, None, 0.0,
                                                                     board)
        outcome = ray.get(worker.run.remote(tasks[cell.task], cell, shard))
        assert outcome.rows == 20
        posted = ray.get(board.take.remote())
        assert 0 < posted[shard.id] <= shard.size  # examples of this shard done, as last posted
        assert ray.get(board.take.remote()) == {}  # taken once

        bar = tqdm(total=30, file=io.StringIO())
        meter = _Meter(bar, board, every=0.0)
        other = Shard("other", cell.id, 20, 30)
        board.post.remote(other.id, 4.0)
        meter.poll()
        assert bar.n == 4  # a shard in flight counts by what its replica posted
        meter.over(other)
        assert bar.n == 10
        board.post.remote(other.id, 6.0)  # a late post of a finished shard
        meter.poll()
        assert bar.n == 10  # not counted twice
    finally:
        shutdown()
