"""MLflow: the sweep, its cells and its scaling curves. The only module that imports mlflow.

MLflow is a view of the store, rebuilt from it on demand. Only the driver
writes (SQLite and MLflow's experiment creation do not like many writers),
every write is batched, and every run is found again by a tag before one is
created, so running a sweep twice never duplicates a run. The experiment's
runs are read once per Tracker (one paged search), not once per run, so a
cell already logged with the same scores costs no call, and a new one three
(create, one batch of params, metrics and tags, end):

    parent run   tags orchestrator.sweep_id = {sweep_id}, orchestrator.kind = sweep: one parent per
                 sweep name, whatever grid ran (a sub- or super-grid reuses it; of several
                 parents left by older versions, which keyed by plan fingerprint, the latest)
    cell runs    tag orchestrator.cell_id   (children of the parent)
    curve runs   tag orchestrator.curve     = {task}/{prompt}[@{x}] (children), metric
                 history logged at step = the curve's x (the parameter count unless
                 analysis.x names another scale, e.g. train_step), so the UI's chart
                 of a metric against step is the scaling curve.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from orchestrator.secrets import redact, redact_param, redact_text

MAX_PARAMS = 100  # per log_batch (mlflow/utils/validation.py)
MAX_METRICS = 1000
MAX_TAGS = 100
MAX_ENTITIES = 1000  # metrics + params + tags in one log_batch
SEARCH_PAGE = 1000
INDEXED_TAGS = ("orchestrator.sweep_id", "orchestrator.cell_id", "orchestrator.curve")
MAX_PARAM_VALUE = 6000
PARENT = "mlflow.parentRunId"
EXPERIMENT_KIND = "mlflow.experimentKind"  # the UI's experiment type: runs table, not the GenAI pages


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list | dict) else str(v)
    return out


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) make a call to a server that went away hang
# for minutes; ours fail within seconds so the sweep goes on and says so. A value the user set is kept.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def bound_http_retries() -> None:
    """Bound MLflow's HTTP retries and timeout for this process (read by mlflow when each request is made)."""
    for k, v in HTTP_LIMITS.items():
        os.environ.setdefault(k, v)


class Tracker:
    """Find-or-create runs for one sweep in one MLflow experiment."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        bound_http_retries()
        if redact_text(uri) != uri:
            # MLflow writes "View run ... at: <tracking URI>/#/..." to stdout for every run it ends,
            # password included; our own lines print the URI redacted
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            # MLflow 3's UI opens an experiment without this tag on its (empty) GenAI page, not on the runs
            exp_id = self.client.create_experiment(experiment, tags={EXPERIMENT_KIND: "custom_model_development"})
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp_id)
            if EXPERIMENT_KIND not in exp.tags:
                self.client.set_experiment_tag(exp_id, EXPERIMENT_KIND, "custom_model_development")
        self.experiment_id = exp_id
        self._by_tag: dict[tuple[str, str], list[str]] | None = None  # (tag, value) -> run ids, newest first
        self._tags: dict[str, dict[str, str]] = {}  # run id -> its tags, as known to this process
        self._param_keys: dict[str, set[str]] = {}  # run id -> its params' keys
        self._created: set[str] = set()  # runs this process created
        self._points: dict[str, dict[str, dict[int, float]]] = {}  # curve run -> metric -> step -> value logged

    # -- finding runs -----------------------------------------------------------
    def _index(self) -> dict[tuple[str, str], list[str]]:
        """Every run of the experiment by each of its orchestrator tags, from one paged search (newest first)."""
        if self._by_tag is None:
            self._by_tag = {}
            token = None
            while True:
                page = self.client.search_runs([self.experiment_id], max_results=SEARCH_PAGE, page_token=token,
                                               order_by=["attributes.start_time DESC"])
                for run in page:
                    self._remember(run.info.run_id, dict(run.data.tags), set(run.data.params))
                token = page.token
                if not token:
                    break
        return self._by_tag

    def _remember(self, run_id: str, tags: dict[str, str], param_keys: set[str], newest: bool = False) -> None:
        self._tags[run_id] = tags
        self._param_keys[run_id] = param_keys
        for k, v in tags.items():
            if k in INDEXED_TAGS:
                ids = self._by_tag.setdefault((k, v), [])  # type: ignore[union-attr]
                ids.insert(0, run_id) if newest else ids.append(run_id)

    def _find(self, tag: str, value: str, parent: str | None = None, kind: str | None = None) -> str | None:
        """The most recent run with this tag (and parent, and kind), or None."""
        for run_id in self._index().get((tag, value), []):
            tags = self._tags[run_id]
            if (not parent or tags.get(PARENT) == parent) and (not kind or tags.get("orchestrator.kind") == kind):
                return run_id
        return None

    def _find_or_create(self, tag: str, value: str, name: str, parent: str | None, tags: dict[str, str],
                        kind: str | None = None) -> str:
        run_id = self._find(tag, value, parent, kind)
        if run_id:
            return run_id
        all_tags = {tag: value, **tags}
        if parent:
            all_tags[PARENT] = parent
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        self._remember(run.info.run_id, dict(run.data.tags), set(), newest=True)
        self._created.add(run.info.run_id)
        return run.info.run_id

    # -- writing ---------------------------------------------------------------
    def _params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._batch(run_id, params=params)

    def _batch(self, run_id: str, params: Mapping[str, Any] | None = None, metrics: list[Metric] = (),
               tags: Mapping[str, str] | None = None) -> None:
        """Params not yet on the run (MLflow's are immutable), metrics and tags, in as few log_batch calls as
        MLflow's limits allow (one for a cell)."""
        self._index()
        known = self._param_keys.setdefault(run_id, set())
        items = [Param(k[:250], redact_param(k, v)[:MAX_PARAM_VALUE]) for k, v in (params or {}).items()
                 if k[:250] not in known]
        tag_items = [RunTag(k, v) for k, v in (tags or {}).items()]
        metrics = list(metrics)
        while items or metrics or tag_items:
            p, items = items[:MAX_PARAMS], items[MAX_PARAMS:]
            t, tag_items = tag_items[:MAX_TAGS], tag_items[MAX_TAGS:]
            m, metrics = metrics[: MAX_ENTITIES - len(p) - len(t)], metrics[MAX_ENTITIES - len(p) - len(t):]
            self.client.log_batch(run_id, metrics=m, params=p, tags=t)
            known.update(x.key for x in p)
            self._tags.setdefault(run_id, {}).update({x.key: x.value for x in t})

    def _metrics(self, run_id: str, metrics: list[Metric]) -> None:
        self._batch(run_id, metrics=metrics)

    def _already(self, run_id: str, digest: str) -> bool:
        self._index()
        return self._tags.get(run_id, {}).get("orchestrator.logged") == digest

    def sweep_run(self, sweep_id: str, fingerprint: str, config: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        """The sweep's parent run, found by sweep id (any grid), with the resolved config (secrets removed) as
        params and artifact. A param keeps its first value (MLflow params are immutable); the artifact is the
        latest run's config, and the store's manifest.json lists every run's."""
        clean = redact(dict(config))
        run_id = self._find_or_create(
            "orchestrator.sweep_id",
            sweep_id,
            sweep_id,
            None,
            {"orchestrator.kind": "sweep"},
            kind="sweep",
        )
        self._params(run_id, {**flatten(clean), **{f"plan.{k}": v for k, v in info.items()}})
        self.client.log_dict(run_id, clean, "config/resolved_config.json")
        return run_id

    def log_cell(self, parent: str, cell_id: str, name: str, params: Mapping[str, Any],
                 scores: Mapping[str, Mapping[str, float]]) -> str:
        """One child run per cell: its params and each metric's mean and 95% interval."""
        run_id = self._find_or_create(
            "orchestrator.cell_id", cell_id, name, parent, {"orchestrator.kind": "cell"}
        )
        digest = _digest(scores)
        if self._already(run_id, digest):
            return run_id
        now = int(time.time() * 1000)
        metrics = []
        for metric, s in scores.items():
            for suffix, key in (("", "mean"), ("_ci_lo", "lo"), ("_ci_hi", "hi"), ("_chance", "chance"),
                                ("_normalized", "normalized")):
                v = s.get(key)
                if v is not None and v == v:  # skip NaN and missing
                    metrics.append(Metric(f"{metric}{suffix}", float(v), now, 0))
        self._batch(run_id, params=params, metrics=metrics, tags={"orchestrator.logged": digest})
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def log_curve(self, parent: str, key: str, name: str, params: Mapping[str, Any],
                  points: list[tuple[int, Mapping[str, float]]], artifacts: list[Path] = (),
                  tags: Mapping[str, str] | None = None) -> str:
        """One child run per task x prompt style (x scale): each metric logged at step = the curve's x; `tags`
        (the verdicts, the description) are set as given."""
        run_id = self._find_or_create("orchestrator.curve", key, name, parent, {"orchestrator.kind": "curve"})
        digest = _digest([points, [p.name for p in artifacts], dict(tags or {})])
        if self._already(run_id, digest):
            return run_id
        have = self._points.get(run_id)
        if have is None:  # read once per run and process; a run this process made starts empty
            have = {}
            if run_id not in self._created:
                for k in self.client.get_run(run_id).data.metrics:
                    have[k] = {m.step: m.value for m in self.client.get_metric_history(run_id, k)}
            self._points[run_id] = have
        now = int(time.time() * 1000)
        metrics = []
        for step, values in sorted(points):
            for k, v in values.items():
                if v is None or v != v:
                    continue
                if have.get(k, {}).get(int(step)) == float(v):
                    continue  # this point is already on the curve
                metrics.append(Metric(k, float(v), now, int(step)))
        self._batch(run_id, params=params, metrics=metrics, tags={k: redact_text(v) for k, v in (tags or {}).items()})
        for m in metrics:
            have.setdefault(m.key, {})[m.step] = m.value
        for path in artifacts:
            self.client.log_artifact(run_id, str(path), "curves")
        self._batch(run_id, tags={"orchestrator.logged": digest})  # last: every point and artifact is in
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def cell_run(self, parent: str, cell_id: str, name: str, params: Mapping[str, Any]) -> str:
        """The cell's run, found or created (RUNNING) when its first shard lands, with its params."""
        run_id = self._find_or_create("orchestrator.cell_id", cell_id, name, parent, {"orchestrator.kind": "cell"})
        self._params(run_id, params)
        return run_id

    def progress(self, run_id: str, counts: Mapping[str, float], step: int) -> None:
        """Counters over time (shards done / failed / total), one point each at `step`."""
        now = int(time.time() * 1000)
        self._metrics(run_id, [Metric(k, float(v), now, int(step)) for k, v in counts.items()])

    def set_status(self, run_id: str, status: str, tags: Mapping[str, str] | None = None) -> None:
        """RUNNING while work is under way (a resumed sweep's parent reopens), else terminate with `status`."""
        self._batch(run_id, tags=tags)
        if status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status)

    def status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def log_artifacts(self, run_id: str, paths: list[Path], subdir: str) -> None:
        for p in paths:
            self.client.log_artifact(run_id, str(p), subdir)

    def finish(self, run_id: str, metrics: Mapping[str, float], status: str = "FINISHED") -> None:
        now = int(time.time() * 1000)
        self._metrics(run_id, [Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.set_terminated(run_id, status)

    def runs(self) -> list:
        return self.client.search_runs([self.experiment_id], max_results=10000)
