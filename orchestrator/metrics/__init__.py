"""Metrics: pure functions from stored per-example records to scores, and cell aggregates.

Imports none of torch, ray, mlflow or fsspec, so any stored sweep can be
rescored here without a model or a cluster. `registry` holds the metrics
(add one with `@metric`), `definitions` the built-in ones, `aggregate` the
cell means with bootstrap intervals.
"""

from orchestrator.metrics import definitions as definitions  # registers the built-in metrics
from orchestrator.metrics.aggregate import CellScore, bootstrap_cell_metric, bootstrap_ci, summarise
from orchestrator.metrics.definitions import (
    bigbench_argmax,
    extract_answer,
    levenshtein,
    normalize_answer,
    option_probs,
)
from orchestrator.metrics.registry import (
    Metric,
    MetricContext,
    UnknownMetricError,
    available,
    cell_metric,
    chance,
    compute,
    get,
    group_metric,
    metric,
    record_chance,
)

__all__ = [
    "CellScore",
    "Metric",
    "MetricContext",
    "UnknownMetricError",
    "available",
    "bigbench_argmax",
    "bootstrap_cell_metric",
    "bootstrap_ci",
    "cell_metric",
    "chance",
    "compute",
    "extract_answer",
    "get",
    "group_metric",
    "levenshtein",
    "metric",
    "normalize_answer",
    "option_probs",
    "record_chance",
    "summarise",
]
