"""End to end on real parts: Hydra config -> plan -> Ray workers -> transformers -> fsspec store -> MLflow.

The grid is small (two sizes x one task x two prompt styles) so it runs in
seconds on two cores, but nothing is mocked: a real local Ray cluster, a real
trained model, a real SQLite MLflow store read back with mlflow.search_runs.
"""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest

from orchestrator import sweep
from orchestrator.config import load
from orchestrator.execute import shutdown
from tests.conftest import overrides_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def cfg(tmp_path, tiny_conf):
    return load(overrides_for(
        tmp_path, tiny_conf,
        "task=[add_2]", "prompt=[zero_shot,three_shot]", "tasks.add_2.n=24", "sweep.shard_size=10",
        "sweep.name=itest", "cluster.num_cpus=2", "backend.batch_size=8",
    ))


def test_sweep_end_to_end_and_resume(cfg, tmp_path):
    try:
        first = sweep.run(cfg, progress=False)
        assert first.failed == {}
        assert first.shards_run == 2 * 2 * 3 and first.shards_skipped == 0  # 24 examples -> shards 10, 10, 4
        assert len(first.cells) == 4
        for cell in first.cells:
            assert cell.n_examples == 24
            assert {"exact_match", "token_edit_distance", "target_logprob"} <= set(cell.scores)
        shard_files = list((tmp_path / "store" / "itest" / "shards").glob("*.parquet"))
        assert len(shard_files) == 12
        # each shard says where it ran (record.Provenance); provenance is output, shard ids are the plan's
        stored = pd.concat([pd.read_parquet(f).assign(file=f.name.split(".")[0]) for f in shard_files],
                           ignore_index=True)
        assert set(stored["file"]) == {s.id for s in first.plan.shards} and (stored["file"] == stored["shard_id"]).all()
        assert (stored["node"].str.len() > 0).all() and stored["node"].nunique() == 1  # one local node
        assert (stored["device"] == "cpu").all() and (stored["device_name"] == "").all()
        assert (stored["load_seconds"] > 0).all() and (stored["shard_seconds"] > 0).all()
        per_shard = stored.groupby("file")[["node", "worker", "load_seconds", "shard_seconds"]].nunique()
        assert (per_shard == 1).all().all()  # one value per shard
        models = {c.id: c.model.name for c in first.plan.cells}
        workers = stored.assign(model=stored["cell_id"].map(models)).groupby("model")["worker"].nunique()
        # replicas: as many per model as fit (2 CPUs, 1 each), each loaded its model once
        assert (workers <= 2).all() and (workers >= 1).all()
        # a replica may go on to another model (cluster.reuse_replicas): each model once per replica
        assert (stored.assign(model=stored["cell_id"].map(models)).groupby(["worker", "model"])["load_seconds"]
                .nunique() == 1).all()
        assert [c.nodes for c in first.cells] == [1] * 4
        assert pd.read_csv(tmp_path / "store" / "itest" / "cells.csv")["nodes"].tolist() == [1] * 4
        manifest = json.loads((tmp_path / "store" / "itest" / "manifest.json").read_text())
        assert manifest["fingerprint"] == first.plan.fingerprint and len(manifest["cells"]) == 4
        pngs = sorted(p.name for p in (tmp_path / "outputs" / "itest" / "curves").glob("*.png"))
        assert pngs == ["add_2__three_shot.png", "add_2__zero_shot.png"]

        mlflow.set_tracking_uri(cfg.tracking.uri)
        runs = mlflow.search_runs(experiment_names=["itest"])
        assert len(runs) == 1 + 4 + 2  # sweep, cells, curves
        assert sorted(runs["tags.orchestrator.kind"]) == ["cell"] * 4 + ["curve"] * 2 + ["sweep"]
        parent = runs[runs["tags.orchestrator.kind"] == "sweep"]["run_id"].iloc[0]
        assert (runs[runs["tags.orchestrator.kind"] != "sweep"]["tags.mlflow.parentRunId"] == parent).all()
        cells = runs[runs["tags.orchestrator.kind"] == "cell"]
        assert set(cells["params.prompt_style"]) == {"zero_shot", "three_shot"}
        assert set(runs["status"]) == {"FINISHED"}
        assert (cells["metrics.shard_seconds"] > 0).all() and (cells["metrics.gpu_seconds"] == 0).all()  # CPU
        sweep_run = runs[runs["tags.orchestrator.kind"] == "sweep"].iloc[0]
        assert sweep_run["metrics.shards_done"] == 12 and sweep_run["metrics.shards_total"] == 12
        assert cells["metrics.exact_match"].between(0, 1).all()
        client = mlflow.tracking.MlflowClient(cfg.tracking.uri)
        curve_id = runs[runs["tags.orchestrator.kind"] == "curve"]["run_id"].iloc[0]
        steps = sorted(m.step for m in client.get_metric_history(curve_id, "exact_match"))
        assert steps == sorted(c.model.params for c in first.plan.cells if c.task == "add_2")[::2]
        # read on a log x axis: log10 of each point's x beside it; the verdicts, with reasons, on the run
        logx = {m.step: m.value for m in client.get_metric_history(curve_id, "log10_params")}
        assert logx == {x: pytest.approx(math.log10(x)) for x in steps}
        assert client.get_experiment_by_name("itest").tags["mlflow.experimentKind"] == "custom_model_development"
        curve_run = client.get_run(curve_id)
        assert curve_run.data.tags["orchestrator.verdict.exact_match"].split(" (")[0] in {
            "flat", "smooth", "emergent", "inverse", "u-shaped", "inverse-u"}
        assert "exact_match" in curve_run.data.tags["mlflow.note.content"]

        second = sweep.run(cfg, progress=False)  # the same command again: nothing recomputed, no new runs
        assert second.shards_run == 0 and second.shards_skipped == 12
        assert len(mlflow.search_runs(experiment_names=["itest"])) == 7
        assert [c.scores for c in second.cells] == [c.scores for c in first.cells]
        for cid in runs["run_id"]:
            for key, hist in [("exact_match", client.get_metric_history(cid, "exact_match"))]:
                assert len({m.step for m in hist}) == len(hist), key  # no point logged twice

        # a lost shard is recomputed and only that one
        shard_files[0].unlink()
        third = sweep.run(cfg, progress=False)
        assert third.shards_run == 1 and third.shards_skipped == 11
        assert len(mlflow.search_runs(experiment_names=["itest"])) == 7
    finally:
        shutdown()
