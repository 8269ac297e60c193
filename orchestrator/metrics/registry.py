"""The metric registry: a metric is a named pure function of stored records.

Records reach a metric as plain mappings with the fields of
`orchestrator.record.Record` (rows of a DataFrame read back from parquet work
too, and their list fields may be numpy arrays). A metric never reaches back to
a model, so any stored sweep can be rescored with a metric added later.

Adding a metric takes a few lines::

    from orchestrator.metrics import metric

    @metric("answer_length", kind="continuous", higher_is_better=False, per_record=True)
    def answer_length(records, ctx):
        return [float(len(r["answer"])) for r in records]

A metric's `unit` says what its scores are one per:

- ``"example"`` (default): one score per record, NaN where the metric does not
  apply. The registry also sets NaN wherever a field named in `needs` is empty.
- ``"group"``: one score per group of records (subset accuracy: K-of-K groups).
  Only the records whose `needs` are all present reach the metric, so a cell
  where nothing applies (e.g. nothing was generated) has no groups and no score.
  Register one with `@group_metric` (per-record `stats`, then the groups from
  the pooled rows) so that it can be scored from per-shard rows too.
- ``"cell"``: one number for the whole cell (expected calibration error, BLEU).
  `per_example` is False for these. Register one with `@cell_metric`, giving a
  per-example `stats` function and decorating the reduction, so the bootstrap
  can resample the statistics instead of re-reading every record; the rows of
  records missing a field in `needs` are set to NaN (left out), as for the others.

A cell can be scored from rows kept per shard (`Metric.rows`, orchestrator.cellcache),
so that a resume reads only the shards it added, when its metrics say how:
a per-example metric registered with `per_record=True` (its score of a record
depends on that record alone, as for every built-in one), and group and cell
metrics registered with per-record `stats`. A `chance` made with `record_chance`
is the mean of a per-record value and pools too. Any other metric or chance
function makes its cells read every record again: slower, never wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["discontinuous", "continuous"]
Unit = Literal["example", "group", "cell"]
MetricFn = Callable[[Sequence[Mapping[str, Any]], "MetricContext"], list[float]]
StatsFn = Callable[[Sequence[Mapping[str, Any]], "MetricContext"], np.ndarray]
ReduceFn = Callable[[np.ndarray], float]
ChanceFn = Callable[[Sequence[Mapping[str, Any]]], "float | None"]
GroupsFn = Callable[[np.ndarray, "MetricContext"], list[float]]

_KINDS = ("discontinuous", "continuous")
_UNITS = ("example", "group", "cell")


@dataclass(frozen=True)
class MetricContext:
    """What a metric may need besides the records, fixed per sweep so scores are reproducible.

    `output_regex` is the task's answer regex (BIG-bench's `output_regex`), for a
    user's metric that wants it: the pipeline already applied it once to the
    stored `answer`, and the built-in metrics never apply it again;
    `subset_k` the K of K-of-K subset accuracy, `seed` seeds every random
    choice a metric makes (the subset grouping).
    """

    output_regex: str | None = None
    subset_k: int = 4
    seed: int = 0


class RecordChance:
    """A chance baseline that is the mean, over the records where it is defined, of one value per record (NaN:
    undefined for that record; None when no record has one). Pooled from per-shard rows exactly as from the
    whole cell, so a metric with one can be scored incrementally (`Metric.poolable`)."""

    def __init__(self, per_record: Callable[[Mapping[str, Any]], float]):
        self.per_record = per_record
        self.__module__ = getattr(per_record, "__module__", __name__)  # the cache hashes the defining module

    def rows(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array([float(self.per_record(r)) for r in records], dtype=np.float64)

    @staticmethod
    def pooled(values: np.ndarray) -> float | None:
        v = np.asarray(values, dtype=np.float64)
        v = v[~np.isnan(v)]
        return float(v.mean()) if v.size else None

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> float | None:
        return self.pooled(self.rows(records))


def record_chance(per_record: Callable[[Mapping[str, Any]], float]) -> RecordChance:
    """A `chance` for `@metric`: the mean of `per_record(record)` over the records where it is not NaN."""
    return RecordChance(per_record)


@dataclass(frozen=True)
class Metric:
    """A registered metric and what an analysis needs to read its numbers."""

    name: str
    fn: MetricFn
    kind: Kind
    higher_is_better: bool
    needs: tuple[str, ...] = ()
    unit: Unit = "example"
    chance_fn: ChanceFn | None = None
    stats: StatsFn | None = None
    reduce: ReduceFn | None = None
    groups: GroupsFn | None = None  # a group metric with `stats`: its group scores from the pooled valid rows
    per_record: bool = False  # a per-example metric that declared it scores each record alone (poolable)
    description: str = ""
    best: float | None = None  # the perfect score: the `high` of BIG-bench's normalised score (None: unbounded)

    @property
    def per_example(self) -> bool:
        """True when there is one score per record (so the cell mean is a mean over examples)."""
        return self.unit == "example"

    def applies(self, record: Mapping[str, Any]) -> bool:
        """Whether every field in `needs` is present and non-empty in `record`."""
        return all(not is_empty(record.get(field)) for field in self.needs)

    @property
    def poolable(self) -> bool:
        """Whether a cell's score can be rebuilt from rows computed shard by shard (`rows`, `chance_rows`):
        per-example metrics registered with `per_record=True`, and group and cell metrics registered with
        per-record `stats`; with no chance or a `record_chance` one."""
        chance_ok = self.chance_fn is None or isinstance(self.chance_fn, RecordChance)
        if self.unit == "example":
            return chance_ok and self.per_record
        if self.unit == "group":
            return chance_ok and self.stats is not None and self.groups is not None
        return chance_ok and self.stats is not None and self.reduce is not None

    def rows(self, records: Sequence[Mapping[str, Any]], ctx: MetricContext | None = None) -> np.ndarray:
        """One row per record (len(records) x k), NaN where the record does not count: the per-example score, or
        the `stats` row of a group or cell metric. Rows of a cell's shards, stacked in the cell's order, give
        what the whole cell gives (`aggregate.score_rows`). Only for a `poolable` metric."""
        if not self.poolable:
            raise ValueError(f"metric {self.name!r} needs the whole cell at once; it has no per-record rows")
        recs = as_records(records)
        ctx = ctx or MetricContext()
        if self.unit == "example":
            return np.asarray(self(recs, ctx), dtype=np.float64).reshape(len(recs), 1)
        assert self.stats is not None
        rows = np.asarray(self.stats(recs, ctx), dtype=np.float64)  # `stats` is masked: 2-D, a row per record
        return rows if rows.ndim == 2 else rows.reshape(len(recs), -1 if len(recs) else 1)

    def chance_rows(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """The per-record values a `record_chance` baseline is the mean of; None without one."""
        if not isinstance(self.chance_fn, RecordChance):
            return None
        return self.chance_fn.rows(as_records(records))

    def chance(self, records: Sequence[Mapping[str, Any]] | Any) -> float | None:
        """The random-chance score on these records, or None where chance is undefined."""
        if self.chance_fn is None:
            return None
        return self.chance_fn(as_records(records))

    def __call__(self, records: Sequence[Mapping[str, Any]] | Any, ctx: MetricContext | None = None) -> list[float]:
        recs = as_records(records)
        ctx = ctx or MetricContext()
        if self.unit == "group":  # a group of inapplicable records would otherwise score as a real group
            recs = [r for r in recs if self.applies(r)]
        values = [float(v) for v in self.fn(recs, ctx)]
        if self.unit == "example":
            if len(values) != len(recs):
                raise ValueError(f"metric {self.name!r} returned {len(values)} scores for {len(recs)} records")
            values = [v if self.applies(r) else math.nan for v, r in zip(values, recs, strict=True)]
        elif self.unit == "cell" and len(values) != 1:
            raise ValueError(f"cell-level metric {self.name!r} must return one value, got {len(values)}")
        return values


_REGISTRY: dict[str, Metric] = {}


class UnknownMetricError(KeyError):
    """A metric name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def _check(name: str, kind: str, unit: str, replace: bool) -> None:
    if kind not in _KINDS:
        raise ValueError(f"metric {name!r}: kind must be one of {_KINDS}, got {kind!r}")
    if unit not in _UNITS:
        raise ValueError(f"metric {name!r}: unit must be one of {_UNITS}, got {unit!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"metric {name!r} is already registered (pass replace=True to override)")


def metric(
    name: str,
    *,
    kind: Kind,
    higher_is_better: bool,
    needs: Sequence[str] = (),
    unit: Unit = "example",
    chance: ChanceFn | None = None,
    best: float | None = None,
    per_record: bool = False,
    replace: bool = False,
) -> Callable[[MetricFn], MetricFn]:
    """Register `fn(records, ctx) -> list[float]` under `name`; returns `fn` unchanged.

    `kind` is "discontinuous" for all-or-nothing scores (exact match, MC grade)
    and "continuous" for partial-credit ones: the distinction Schaeffer et al.
    (2023) show decides whether a curve looks emergent. `needs` lists the
    Record fields that must be non-empty for an example to count. `chance`
    maps records to the random-guess score (None where undefined); `best` is
    the perfect score. With both, a cell also gets BIG-bench's normalised
    score 100 (mean - chance) / (best - chance). `per_record=True` (unit "example" only) declares that the
    score of a record depends on that record alone, whatever records are passed with it: its cells can then be
    pooled from rows kept per shard, so a resume reads only the shards it adds; without it they are read whole.
    """

    def register(fn: MetricFn) -> MetricFn:
        _check(name, kind, unit, replace)
        if per_record and unit != "example":
            raise ValueError(f"metric {name!r}: per_record=True is for unit='example'; a {unit} metric pools "
                             f"through per-record stats (@{unit}_metric)")
        _REGISTRY[name] = Metric(
            name=name,
            fn=fn,
            kind=kind,
            higher_is_better=higher_is_better,
            needs=tuple(needs),
            unit=unit,
            chance_fn=chance,
            description=_first_line(fn.__doc__),
            best=best,
            per_record=per_record,
        )
        return fn

    return register


def cell_metric(
    name: str,
    *,
    kind: Kind,
    higher_is_better: bool,
    stats: StatsFn,
    needs: Sequence[str] = (),
    chance: ChanceFn | None = None,
    best: float | None = None,
    replace: bool = False,
) -> Callable[[ReduceFn], ReduceFn]:
    """Register a cell-level metric as `reduce(stats(records, ctx))`; returns `reduce` unchanged.

    `stats` gives one row of numbers per record (a row containing NaN means
    "not applicable" and is dropped; so is the row of a record missing a field
    in `needs`); `reduce` turns the valid rows into one number, and is not
    called on zero rows (the metric is NaN then). Splitting it this way lets
    the bootstrap resample rows cheaply.
    """
    def register(reduce: ReduceFn) -> ReduceFn:
        def fn(records: Sequence[Mapping[str, Any]], ctx: MetricContext) -> list[float]:
            rows = valid_rows(masked(records, ctx))
            return [float(reduce(rows)) if len(rows) else math.nan]

        masked = _register_split(name, "cell", fn, stats, needs, kind=kind, higher_is_better=higher_is_better,
                                 chance_fn=chance, best=best, replace=replace, reduce=reduce,
                                 description=_first_line(reduce.__doc__))
        return reduce

    return register


def group_metric(
    name: str,
    *,
    kind: Kind,
    higher_is_better: bool,
    stats: StatsFn,
    needs: Sequence[str] = (),
    chance: ChanceFn | None = None,
    best: float | None = None,
    replace: bool = False,
) -> Callable[[GroupsFn], GroupsFn]:
    """Register a group metric as `groups(valid rows of stats(records, ctx), ctx) -> one score per group`.

    `stats` gives one row per record, as for `cell_metric` (NaN rows, and the rows of records missing a field in
    `needs`, are dropped); `groups` forms the groups from the pooled rows of the cell. Split this way, a cell can
    be scored from rows kept per shard.
    """
    def register(groups: GroupsFn) -> GroupsFn:
        def fn(records: Sequence[Mapping[str, Any]], ctx: MetricContext) -> list[float]:
            return [float(v) for v in groups(valid_rows(masked(records, ctx)), ctx)]

        masked = _register_split(name, "group", fn, stats, needs, kind=kind, higher_is_better=higher_is_better,
                                 chance_fn=chance, best=best, replace=replace, groups=groups,
                                 description=_first_line(groups.__doc__))
        return groups

    return register


def _register_split(name: str, unit: Unit, fn: MetricFn, stats: StatsFn, needs: Sequence[str], *,
                    replace: bool, **fields: Any) -> StatsFn:
    """Register a group or cell metric split into per-record `stats` and what makes its scores of the pooled
    rows (`reduce` or `groups`, in `fields`); returns the masked stats `fn` reads."""
    _check(name, fields["kind"], unit, replace)
    masked = _masked(name, stats, tuple(needs))
    _REGISTRY[name] = Metric(name=name, fn=fn, needs=tuple(needs), unit=unit, stats=masked, **fields)
    return masked


def _masked(name: str, stats: StatsFn, required: tuple[str, ...]) -> StatsFn:
    """`stats` as a 2-D array with one row per record, NaN for a record missing a field in `required`."""

    def masked(records: Sequence[Mapping[str, Any]], ctx: MetricContext) -> np.ndarray:
        rows = np.array(stats(records, ctx), dtype=np.float64)
        if rows.ndim == 1:
            rows = rows[:, None]
        if len(rows) != len(records):
            raise ValueError(f"metric {name!r}: stats gave {len(rows)} rows for {len(records)} records")
        for i, r in enumerate(records):
            if any(is_empty(r.get(f)) for f in required):
                rows[i] = np.nan
        return rows

    masked.__wrapped__ = stats  # type: ignore[attr-defined] # the cache hashes the module that defines `stats`
    return masked


def get(name: str) -> Metric:
    """The metric registered as `name`; an unknown name raises a KeyError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none registered)"
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {known}") from None


def available() -> list[str]:
    """Names of all registered metrics, sorted."""
    return sorted(_REGISTRY)


def compute(name: str, records: Sequence[Mapping[str, Any]] | Any, ctx: MetricContext | None = None) -> list[float]:
    """Scores of metric `name` on `records` (per example, per group or one per cell)."""
    return get(name)(records, ctx)


def chance(name: str, records: Sequence[Mapping[str, Any]] | Any) -> float | None:
    """Random-chance baseline of metric `name` on `records`; None where undefined."""
    return get(name).chance(records)


# --------------------------------------------------------------------------- record helpers


def as_records(records: Sequence[Mapping[str, Any]] | Any) -> list[Mapping[str, Any]]:
    """A list of mappings from a sequence of mappings or from a DataFrame (duck-typed, no pandas import)."""
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        return list(records.to_dict("records"))
    return list(records)


def is_empty(value: Any) -> bool:
    """True for None, NaN (a missing cell read back from parquet), False flags and zero-length sequences."""
    if value is None:
        return True
    if isinstance(value, bool | np.bool_):
        return not bool(value)
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (str, bytes)):
        return len(value) == 0
    try:
        return len(value) == 0
    except TypeError:
        return False


def as_list(value: Any) -> list[Any]:
    """A record field as a Python list: handles numpy arrays, tuples, None/NaN and a bare string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (str, bytes)):
        return [value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return list(value)


def as_floats(value: Any) -> np.ndarray:
    """A numeric list field as a float64 array (empty if missing)."""
    return np.asarray(as_list(value), dtype=np.float64)


def as_text(value: Any) -> str:
    """A string field, with None/NaN read as the empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def valid_rows(stats: np.ndarray) -> np.ndarray:
    """Rows of a 2-D statistics array that contain no NaN."""
    arr = np.asarray(stats, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.size == 0:
        return arr.reshape(0, arr.shape[1] if arr.ndim == 2 else 1)
    return arr[~np.isnan(arr).any(axis=1)]


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0]
