"""Same sweep name, different grid (issue 11): one MLflow parent, one run per cell, a merged manifest.

A sub-grid (one size), then the full grid (two sizes), then the sub-grid again, under one sweep.name, on
real Ray workers and a real SQLite MLflow store: the second run computes only the new cells, the third
none; MLflow keeps one parent and one run per cell; manifest.json lists every cell and each run's config;
`results.load`, cells.csv and `orchestrator report` see every cell after the smaller rerun too.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from orchestrator import results, sweep
from orchestrator.cli import main
from orchestrator.config import load
from orchestrator.execute import shutdown
from tests.conftest import overrides_for

pytestmark = pytest.mark.integration


def test_sub_grid_then_full_grid_then_sub_grid(tmp_path, tiny_conf, capsys):
    common = ["task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=8", "sweep.shard_size=4", "sweep.name=grow",
              "cluster.num_cpus=2", "backend.batch_size=8"]
    sub = load(overrides_for(tmp_path, tiny_conf, *common, "model.sizes=[tiny-a]"))
    full = load(overrides_for(tmp_path, tiny_conf, *common))
    try:
        a = sweep.run(sub, progress=False)
        b = sweep.run(full, progress=False)
        c = sweep.run(sub, progress=False)
    finally:
        shutdown()
    assert (a.shards_run, b.shards_run, c.shards_run) == (2, 2, 0)
    assert len(a.cells) == 1 and len(b.cells) == 2 and len(c.cells) == 2  # the smaller rerun hides nothing
    store = tmp_path / "store" / "grow"
    manifest = json.loads((store / "manifest.json").read_text())
    assert {cl["model"] for cl in manifest["cells"]} == {"tiny-a", "tiny-b"} and len(manifest["cells"]) == 2
    assert set(manifest["models"]) == {"tiny-a", "tiny-b"}
    assert manifest["config"]["model"]["sizes"] == ["tiny-a", "tiny-b"]
    assert [r["config"]["model"]["sizes"] for r in manifest["runs"]] == [["tiny-a"], ["tiny-a", "tiny-b"], ["tiny-a"]]
    assert all(r["code_version"] and r["time"] for r in manifest["runs"])

    mlflow.set_tracking_uri(full.tracking.uri)
    runs = mlflow.search_runs(experiment_names=["grow"])
    assert sorted(runs["tags.orchestrator.kind"]) == ["cell"] * 2 + ["curve"] + ["sweep"]
    parent = runs[runs["tags.orchestrator.kind"] == "sweep"]["run_id"].iloc[0]
    assert (runs[runs["tags.orchestrator.kind"] != "sweep"]["tags.mlflow.parentRunId"] == parent).all()
    assert runs["tags.orchestrator.cell_id"].dropna().nunique() == 2

    ex = results.load("grow", root=str(tmp_path / "store"))
    assert sorted(ex["model"].unique()) == ["tiny-a", "tiny-b"] and len(ex) == 16
    assert sorted(results.load("grow", root=str(tmp_path / "store"), level="cell")["model"]) == ["tiny-a", "tiny-b"]
    capsys.readouterr()
    assert main(["report", "grow", "--root", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "tiny-a" in out and "tiny-b" in out and "2 cells rescored" in out
    assert sorted(pd.read_csv(store / "cells.csv")["model"]) == ["tiny-a", "tiny-b"]
    assert len(mlflow.search_runs(experiment_names=["grow"])) == 4  # report duplicated nothing
