"""`rescore` adds a user's metric to a finished sweep from stored records: MLflow and the report change,
and no model is loaded (the checkpoints are deleted first, and torch is never imported)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import mlflow
import pytest

from orchestrator import sweep
from orchestrator.config import load
from orchestrator.execute import shutdown
from tests.conftest import REPO, overrides_for

pytestmark = pytest.mark.integration

MY_METRIC = textwrap.dedent('''
    """A user's metric in a few lines: the length of the extracted answer in characters."""
    from orchestrator.metrics import metric

    @metric("answer_length", kind="continuous", higher_is_better=False, needs=("generated",))
    def answer_length(records, ctx):
        return [float(len(r["answer"])) for r in records]
''')


def test_rescore_with_a_new_metric_loads_no_model(tmp_path, tiny_model, tiny_model_b):
    models = tmp_path / "models"
    a, b = shutil.copytree(tiny_model, models / "a"), shutil.copytree(tiny_model_b, models / "b")
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "tiny.yaml").write_text(
        f"family: tiny\ncatalog:\n  s: {{path: '{a}', params: 1000}}\n  m: {{path: '{b}', params: 10000}}\n"
        "sizes: [s, m]\n"
    )
    ov = overrides_for(tmp_path, tmp_path / "conf", "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=12",
                       "sweep.name=rs", "cluster.num_cpus=2")
    try:
        first = sweep.run(load(ov), progress=False)
    finally:
        shutdown()
    assert first.shards_run == 2
    shutil.rmtree(models)  # any attempt to load a model now fails

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "my_metrics.py").write_text(MY_METRIC)
    code = textwrap.dedent(f'''
        import sys
        from orchestrator.cli import main
        rc = main(["rescore", "rs", "--root", {str(tmp_path / "store")!r},
                   "metrics.modules=[my_metrics]",
                   "metrics.names=[exact_match,token_edit_distance,answer_length]"])
        assert rc == 0, rc
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("orchestrator.backends"))
        print("LOADED", loaded)
    ''')
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'plugins'}{os.pathsep}{REPO}"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "LOADED []" in r.stdout  # neither torch nor any backend was imported

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["rs"])
    assert len(runs) == 1 + 2 + 1  # no run was duplicated
    cells = runs[runs["tags.orchestrator.kind"] == "cell"]
    assert cells["metrics.answer_length"].notna().all()
    curve = runs[runs["tags.orchestrator.kind"] == "curve"]["run_id"].iloc[0]
    hist = mlflow.tracking.MlflowClient().get_metric_history(curve, "answer_length")
    assert sorted(m.step for m in hist) == [1000, 10000]
    report = (tmp_path / "outputs" / "rs" / "report.html").read_text()
    assert "answer_length" in report
    cells_csv = (tmp_path / "store" / "rs" / "cells.csv").read_text()
    assert "answer_length" in cells_csv.splitlines()[0]
    assert json.loads((tmp_path / "store" / "rs" / "manifest.json").read_text())["sweep_id"] == "rs"

    # a rescore with fewer metrics than the sweep goes beside the full results; they and MLflow stay as they are
    from orchestrator.cli import main

    full_csv = (tmp_path / "store" / "rs" / "cells.csv").read_text()
    assert main(["rescore", "rs", "--root", str(tmp_path / "store"), "metrics.names=[exact_match]"]) == 0
    assert (tmp_path / "store" / "rs" / "cells.csv").read_text() == full_csv
    view = (tmp_path / "store" / "rs" / "views" / "exact_match" / "cells.csv").read_text().splitlines()[0]
    assert "exact_match" in view and "token_edit_distance" not in view
    assert (tmp_path / "outputs" / "rs" / "views" / "exact_match" / "report.html").exists()
    again = mlflow.search_runs(experiment_names=["rs"])
    cell_runs = again[again["tags.orchestrator.kind"] == "cell"]
    assert len(again) == 4 and cell_runs["metrics.token_edit_distance"].notna().all()

    # a copied folder is reported as itself, not as the sweep that wrote it
    shutil.copytree(tmp_path / "store" / "rs", tmp_path / "store" / "rs-copy")
    original = (tmp_path / "outputs" / "rs" / "report.html").stat().st_mtime_ns

    assert main(["report", "rs-copy", "--root", str(tmp_path / "store"), "tracking.enabled=false"]) == 0
    assert "rs-copy" in (tmp_path / "outputs" / "rs-copy" / "report.html").read_text()
    assert (tmp_path / "outputs" / "rs" / "report.html").stat().st_mtime_ns == original
