"""Tracking against real MLflow stores: a SQLite file, and a real `mlflow server` process."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import mlflow
import pytest

from orchestrator.secrets import install_log_filter, is_secret_key, redact, redact_text
from orchestrator.tracking import Tracker
from tests.conftest import mlflow_server

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


HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"  # split so no scanner mistakes the test for a leak
GH = "ghp_" + "0123456789abcdefghijABCDEFGHIJklmnop"
SK = "sk-" + "proj-AbCdEfGhIjKlMnOpQrStUv0123"
AKIA = "AKIA" + "IOSFODNN7EXAMPLE"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SECRETS = ["pa55w0rd", "s3cr3t-value", "plain-hub-tok", "plain-api-tok", "plain-auth-tok", "sig0123abcd",
           "qtok0123", HF, GH, SK, AKIA, JWT]


def _config_with_credentials() -> dict:
    """A resolved config as a user might write it: real parameters whose names contain 'token', and credentials."""
    return {
        "prompts": {"zero_shot": {"max_new_tokens": 16, "style": "zero_shot"}},
        "model": {"catalog": {"m": {"path": "gpt2", "tokenizer": "gpt2-tokenizer", "revision": "main"}}},
        "metrics": {"names": ["exact_match", "token_edit_distance"]},
        "tokenizer_cfg": {"pad_token": "<pad>", "n_tokens": 7},
        "data": {"bigbench": "github://google:BIG-bench@main/bigbench/benchmark_tasks"},
        "hub_token": "plain-hub-tok",
        "HF_TOKEN": HF,
        "api_token": "plain-api-tok",
        "auth_token": "plain-auth-tok",
        "password": "pa55w0rd",
        "secret_key": "s3cr3t-value",
        "notes": f"pushed with {GH}; openai {SK}; aws {AKIA}; Authorization: Bearer {JWT}",
        "tracking": {"uri": "http://alice:pa55w0rd@mlflow.example:5000"},
        "tasks": {"t": {"url": "https://host/task.json?token=qtok0123&X-Amz-Signature=sig0123abcd&n=3"}},
    }


def test_mlflow_keeps_real_params_and_masks_credentials(tmp_path):
    """Read back from a real SQLite store: every ordinary parameter verbatim, no credential anywhere."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tr = Tracker(uri, "exp")
    parent = tr.sweep_run("sw", "fp", _config_with_credentials(), {"storage": "s3://AKIDKEY:s3cr3t-value@bucket/sw"})
    cell = tr.log_cell(parent, "c1", "m/t/p", {"max_new_tokens": 16, "tokenizer": "gpt2-tokenizer",
                                                  "hub_token": "plain-hub-tok", "model_path": f"/m?token={HF}"},
                       {"exact_match": {"mean": 0.5, "lo": 0.2, "hi": 0.8}})
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    p = client.get_run(parent).data.params
    # real parameters survive, whatever words their names contain
    assert p["prompts.zero_shot.max_new_tokens"] == "16"
    assert p["model.catalog.m.tokenizer"] == "gpt2-tokenizer"
    assert p["metrics.names"] == '["exact_match", "token_edit_distance"]'
    assert p["tokenizer_cfg.pad_token"] == "<pad>" and p["tokenizer_cfg.n_tokens"] == "7"
    assert p["data.bigbench"] == "github://google:BIG-bench@main/bigbench/benchmark_tasks"
    assert p["tasks.t.url"] == "https://host/task.json?token=***&X-Amz-Signature=***&n=3"
    assert p["tracking.uri"] == "http://***@mlflow.example:5000"
    for key in ("hub_token", "HF_TOKEN", "api_token", "auth_token", "password", "secret_key"):
        assert p[key] == "***", key
    c = client.get_run(cell).data.params
    assert c["max_new_tokens"] == "16" and c["tokenizer"] == "gpt2-tokenizer" and c["hub_token"] == "***"
    assert c["model_path"] == "/m?token=***"
    artifact = Path(mlflow.artifacts.download_artifacts(run_id=parent, artifact_path="config/resolved_config.json",
                                                        tracking_uri=uri, dst_path=str(tmp_path / "dl"))).read_text()
    assert '"max_new_tokens": 16' in artifact and '"tokenizer": "gpt2-tokenizer"' in artifact
    everything = json.dumps([p, c]) + artifact
    for secret in SECRETS:
        assert secret not in everything, secret


@pytest.mark.parametrize("key", ["max_new_tokens", "tokenizer", "token_edit_distance", "n_tokens", "pad_token",
                                 "eos_token_id", "sort_key", "revision", "uri"])
def test_ordinary_names_are_not_credentials(key):
    assert not is_secret_key(key)
    assert redact({key: "value-16"}) == {key: "value-16"}


@pytest.mark.parametrize("key", ["token", "hub_token", "HF_TOKEN", "api_token", "auth_token", "password",
                                 "secret_key", "apiKey", "aws_secret_access_key", "AWS_ACCESS_KEY_ID",
                                 "X-Amz-Signature", "MLFLOW_TRACKING_PASSWORD", "client_secret", "private_key"])
def test_credential_names_are_masked(key):
    assert is_secret_key(key)
    assert redact({key: "value-16"}) == {key: "***"}


def test_redact_text_masks_formats_in_free_text_and_logs(caplog):
    line = (f"run +hub_token=plain-hub-tok max_new_tokens=16 HF={HF} gh {GH} {SK} {AKIA} "
            f"uri http://alice:pa55w0rd@h:5000 url https://h/t.json?token=qtok0123&n=3 password: pa55w0rd")
    out = redact_text(line)
    assert "max_new_tokens=16" in out and "?token=***&n=3" in out and "+hub_token=***" in out
    assert not any(s in out for s in SECRETS)
    logger = logging.getLogger("orchestrator.test_secrets")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    try:
        install_log_filter(logger)
        logger.warning("tracking at %s", "http://alice:pa55w0rd@h:5000")
    finally:
        logger.removeHandler(handler)
    assert handler.stream.getvalue().strip() == "tracking at http://***@h:5000"


@pytest.fixture()
def tracking_server(tmp_path):
    with mlflow_server(tmp_path) as port:
        yield f"http://127.0.0.1:{port}"


def test_real_tracking_server(tracking_server):
    parent = _log_sweep(Tracker(tracking_server, "exp"))
    _check(tracking_server, parent)
    assert _log_sweep(Tracker(tracking_server, "exp")) == parent
    _check(tracking_server, parent)


class _Counted:
    """The real MlflowClient, counting the calls that reach the store (each one a round trip to a server)."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


def test_cells_cost_few_round_trips_and_none_when_unchanged(tmp_path):
    """Every write is batched: a new cell is created, logged in one batch and ended (3 calls); the experiment's
    runs are read once per tracker, so a cell logged again with the same scores costs no call at all."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    scores = {"exact_match": {"mean": 0.5, "lo": 0.4, "hi": 0.6, "chance": 0.0},
              "target_logprob": {"mean": -2.0, "lo": -2.5, "hi": -1.5}}
    params = {f"p{i}": i for i in range(30)}
    for fresh in (True, False):
        tr = Tracker(uri, "exp")
        parent = tr.sweep_run("sw", "fp", {"a": 1}, {"cells": 20})
        counted = _Counted(tr.client)
        tr.client = counted
        for i in range(20):
            tr.log_cell(parent, f"cell{i}", f"m{i}", params, scores)
        if fresh:
            assert len(counted.calls) == 3 * 20, counted.calls
            assert set(counted.calls) == {"create_run", "log_batch", "set_terminated"}
        else:
            assert counted.calls == []
    runs = mlflow.tracking.MlflowClient(tracking_uri=uri).search_runs(
        [Tracker(uri, "exp").experiment_id], max_results=100)
    cells = [r for r in runs if r.data.tags.get("orchestrator.kind") == "cell"]
    assert len(cells) == 20 and all(len(r.data.params) == 30 for r in cells)
    assert all(r.data.metrics["exact_match_ci_hi"] == pytest.approx(0.6) for r in cells)
    assert all(r.info.status == "FINISHED" for r in cells)


def test_a_curve_logged_again_by_the_same_tracker_gets_each_point_once(tmp_path):
    """Live tracking logs a curve run over and over as cells complete, from one Tracker: a point already on the
    curve must not be logged again (the chart would show it twice)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tr = Tracker(uri, "exp")
    parent = tr.sweep_run("sw", "fp", {"a": 1}, {"cells": 2})
    first = [(1000, {"exact_match": 0.0})]
    tr.log_curve(parent, "t/p", "curve t/p", {"task": "t"}, first)
    run_id = tr.log_curve(parent, "t/p", "curve t/p", {"task": "t"}, first + [(10000, {"exact_match": 0.5})])
    Tracker(uri, "exp").log_curve(parent, "t/p", "curve t/p", {"task": "t"},
                                  first + [(10000, {"exact_match": 0.5}), (100000, {"exact_match": 0.9})])
    hist = mlflow.tracking.MlflowClient(tracking_uri=uri).get_metric_history(run_id, "exact_match")
    assert sorted((m.step, m.value) for m in hist) == [(1000, 0.0), (10000, 0.5), (100000, 0.9)]
