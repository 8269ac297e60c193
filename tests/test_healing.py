"""Failures heal inside the run, by real faults (orchestrator.faults): a worker SIGKILLed mid-shard, a shard
out of memory at batch >= 2, a shard that always raises. Records must equal a fault-free run's."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import sweep
from orchestrator.cli import main
from orchestrator.config import load
from orchestrator.execute import backoff, is_oom, shutdown
from orchestrator.record import Provenance
from tests.conftest import overrides_for

GRID = ("task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=16", "sweep.shard_size=4", "cluster.num_cpus=2",
        "backend.batch_size=4", "cluster.max_retries=1", "tracking.live_interval=0")


def _records(store: Path) -> pd.DataFrame:
    """Every stored record without its provenance (where and how fast it ran), sorted."""
    frames = [pd.read_parquet(f) for f in sorted((store / "shards").glob("*.parquet"))]
    df = pd.concat(frames, ignore_index=True).drop(columns=Provenance.columns())
    return df.sort_values(["shard_id", "example_idx"]).reset_index(drop=True)


def test_backoff_and_oom_detection() -> None:
    assert [backoff(a) for a in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 30, 30]
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom(ValueError("index out of range in self"))


def test_killed_worker_oom_and_a_permanent_error_heal_or_fail_alone(tmp_path, tiny_conf, monkeypatch, capsys):
    base_cfg = load(overrides_for(tmp_path / "base", tiny_conf, *GRID, "sweep.name=heal"))
    try:
        baseline = sweep.run(base_cfg, progress=False)
    finally:
        shutdown()
    assert baseline.failed == {}
    shards = sorted(s.id for s in baseline.plan.shards)
    assert len(shards) == 8  # 2 sizes x 1 task x 1 prompt, 16 examples in shards of 4
    killed, oom, broken = shards[1], shards[4], shards[6]

    monkeypatch.setenv("ORCHESTRATOR_FAULTS", f"kill@{killed},oom@{oom},error@{broken}")
    monkeypatch.setenv("ORCHESTRATOR_FAULTS_DIR", str(tmp_path / "markers"))
    overrides = overrides_for(tmp_path, tiny_conf, *GRID, "sweep.name=heal")
    try:
        faulty = sweep.run(load(overrides), progress=False)
    finally:
        shutdown()
    assert (tmp_path / "markers" / f"kill-{killed}").exists()  # the worker really was killed once
    # only the shard that always raises failed, after cluster.max_retries + 1 attempts
    assert set(faulty.failed) == {broken} and "ValueError: injected" in faulty.failed[broken]
    failure = json.loads((tmp_path / "store" / "heal" / "failures" / f"{broken}.json").read_text())
    assert failure["error"] == "ValueError" and failure["attempts"] == 2 and "injected" in failure["message"]
    stored = _records(tmp_path / "store" / "heal")
    ours = _records(tmp_path / "base" / "store" / "heal")
    # the killed shard's records (and every other shard's but the OOM one, which ran at batch 1) equal the
    # fault-free run's, record for record
    same = ~ours["shard_id"].isin([oom, broken])
    pd.testing.assert_frame_equal(stored[~stored["shard_id"].isin([oom])].reset_index(drop=True),
                                  ours[same].reset_index(drop=True))
    assert (stored["shard_id"] == oom).sum() == 4  # the OOM shard succeeded after its batch halved
    # the broken shard's cell is partial everywhere a user looks: result, report, MLflow
    broken_cell = next(s.cell_id for s in faulty.plan.shards if s.id == broken)
    assert [(p.cell_id, p.shards) for p in faulty.partial] == [(broken_cell, "3/4 shards")]
    assert "ValueError" in (faulty.partial[0].reason or "")
    html = faulty.report.read_text()
    assert "partial: 1 of 2 cells incomplete" in html and "orchestrator resume heal" in html
    import mlflow

    mlflow.set_tracking_uri(load(overrides).tracking.uri)
    runs = mlflow.search_runs(experiment_names=["heal"])
    parent = runs[runs["tags.orchestrator.kind"] == "sweep"].iloc[0]
    assert parent["status"] == "FAILED" and parent["tags.orchestrator.partial"] == "1/2 cells incomplete"
    cell_run = runs[runs["tags.orchestrator.cell_id"] == broken_cell].iloc[0]
    assert cell_run["status"] == "FAILED" and cell_run["metrics.shards_failed"] == 1

    # status shows the failed shard with its reason; the next run (fault gone) heals it and clears the record
    assert main(["status", "heal", f"storage.root={tmp_path / 'store'}"]) == 0
    out = capsys.readouterr().out
    assert "7 done, 1 failed, 0 missing, 8 total" in out and f"failed {broken}" in out and "ValueError" in out
    monkeypatch.delenv("ORCHESTRATOR_FAULTS")
    try:
        again = sweep.run(load(overrides), progress=False)
    finally:
        shutdown()
    assert again.failed == {} and again.shards_run == 1
    assert not (tmp_path / "store" / "heal" / "failures" / f"{broken}.json").exists()
    healed = _records(tmp_path / "store" / "heal")
    pd.testing.assert_frame_equal(healed[healed["shard_id"] != oom].reset_index(drop=True),
                                  ours[ours["shard_id"] != oom].reset_index(drop=True))


@pytest.mark.parametrize("kind", ["error"])
def test_faults_are_off_without_the_variable(kind, monkeypatch) -> None:
    from orchestrator import faults

    monkeypatch.delenv("ORCHESTRATOR_FAULTS", raising=False)
    faults.before_inference("abc", 8)  # nothing happens
    monkeypatch.setenv("ORCHESTRATOR_FAULTS", f"{kind}@ab")
    with pytest.raises(ValueError, match="injected"):
        faults.before_inference("abc", 8)
    faults.before_inference("xyz", 8)  # another shard
