"""Tracking against real MLflow stores: a SQLite file, and a real `mlflow server` process."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from orchestrator.secrets import redact
from orchestrator.tracking import Tracker

pytestmark = pytest.mark.integration


def _log_sweep(tr: Tracker) -> str:
    parent = tr.sweep_run("sw", "fp1", {"model": {"family": "zoo"}, "hub_token": "hf_SECRET",
                                         "tracking": {"uri": "http://alice:pa55@host:5000"}}, {"cells": 2})
    for i, params in enumerate([1000, 10000]):
        tr.log_cell(parent, f"cell{i}", f"m{i}/t/p", {"params": params, "task": "t"},
                    {"exact_match": {"mean": 0.1 * i, "lo": 0.0, "hi": 0.2 * i + 0.1, "chance": 0.0}})
    tr.log_curve(parent, "t/p", "curve t/p", {"task": "t"},
                 [(1000, {"exact_match": 0.0, "token_edit_distance": 3.0}),
                  (10000, {"exact_match": 0.1, "token_edit_distance": 2.0})])
    return parent


def _check(uri: str, parent: str) -> None:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("exp")
    all_runs = client.search_runs([exp.experiment_id])
    assert len(all_runs) == 4  # parent + 2 cells + 1 curve
    kinds = sorted(r.data.tags["orchestrator.kind"] for r in all_runs)
    assert kinds == ["cell", "cell", "curve", "sweep"]
    children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert len(children) == 3
    curve = next(r for r in all_runs if r.data.tags["orchestrator.kind"] == "curve")
    hist = client.get_metric_history(curve.info.run_id, "token_edit_distance")
    assert sorted((m.step, m.value) for m in hist) == [(1000, 3.0), (10000, 2.0)]
    p = client.get_run(parent).data.params
    assert p["hub_token"] == "***" and "pa55" not in p["tracking.uri"] and p["model.family"] == "zoo"
    cell = next(r for r in all_runs if r.data.tags.get("orchestrator.cell_id") == "cell1")
    assert cell.data.metrics["exact_match"] == pytest.approx(0.1)
    assert cell.data.metrics["exact_match_ci_hi"] == pytest.approx(0.3)


def test_sqlite_store_find_or_create(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = _log_sweep(Tracker(uri, "exp"))
    _check(uri, parent)
    again = _log_sweep(Tracker(uri, "exp"))  # a second run of the same sweep: no new runs, no new points
    assert again == parent
    _check(uri, parent)
    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["exp"])
    assert len(df) == 4


def test_redact_nested():
    out = redact({"a": {"password": "x", "url": "s3://key:secret@bucket/p"}, "l": ["https://u:p@h/x"]})
    assert out == {"a": {"password": "***", "url": "s3://***@bucket/p"}, "l": ["https://***@h/x"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def mlflow_server(tmp_path):
    exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not come up in 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_real_tracking_server(mlflow_server):
    parent = _log_sweep(Tracker(mlflow_server, "exp"))
    _check(mlflow_server, parent)
    assert _log_sweep(Tracker(mlflow_server, "exp")) == parent
    _check(mlflow_server, parent)
