"""Cell aggregates: the mean of a metric over a cell's records with a 95% interval.

A curve's verdict needs its resolution beside its score (science.md): with a
few hundred examples exact match reads 0 until the model is large, so every
cell score carries an interval and the number of units it was computed from.

Which interval:

- Binary scores (every value 0 or 1: exact match, exact_str_match, subset
  accuracy, MC grade with 0/1 target scores) are a binomial proportion, and
  the percentile bootstrap of a proportion has width zero at 0/n and n/n --
  exactly where emergence is decided. They get the Wilson score interval
  (Wilson 1927, JASA 22:209): it never has width zero away from the bound it
  sits on (0/200 gives [0, 0.019]), needs no resampling, and its coverage
  stays close to nominal for small n and p near 0 or 1, where the Wald
  interval fails (Brown, Cai & DasGupta 2001, "Interval Estimation for a
  Binomial Proportion", Stat. Sci. 16:101, who recommend Wilson or Jeffreys
  for n < 40 and Wilson throughout; Clopper-Pearson is valid but
  conservative, i.e. wider than 95% needs, which would hide real rises).
  Binary-ness is read from the values, not the metric's name: a mean of 0/1
  values is a binomial proportion whatever produced it.
- Everything else: the percentile bootstrap (Efron & Tibshirani 1993).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from orchestrator.metrics.registry import Metric, MetricContext, RecordChance, as_records, get, valid_rows

# Upper bound on indices drawn at once (n_samples x n), to keep memory flat for big cells.
_MAX_DRAWS = 4_000_000


@dataclass(frozen=True)
class CellScore:
    """One metric on one cell: mean with a (1 - alpha) bootstrap interval over `n` units.

    `unit` is what `n` counts: examples, K-of-K groups, or (for a cell-level
    metric) the examples the statistic was computed from. `chance` is the
    random-guess score (None where undefined), the `low` of BIG-bench's
    normalised score.
    """

    name: str
    mean: float
    lo: float
    hi: float
    n: int
    chance: float | None
    kind: str
    higher_is_better: bool
    unit: str = "example"
    interval: str = "bootstrap"  # how lo/hi were computed: "wilson" (binary scores) | "bootstrap"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _draws(rng: np.random.Generator, n: int, n_samples: int) -> Iterable[np.ndarray]:
    """Bootstrap index rows, (chunk, n) at a time; the stream is the same for any chunking."""
    chunk = max(1, _MAX_DRAWS // max(n, 1))
    for start in range(0, n_samples, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_samples - start), n))


def _interval(point: float, boot: np.ndarray, alpha: float) -> tuple[float, float, float]:
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return point, point, point
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    # The percentile interval of a mean can miss the point estimate by a hair
    # for skewed data; widen it so that lo <= mean <= hi always holds.
    return point, float(min(lo, point)), float(max(hi, point))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_samples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of the non-NaN `values` and its percentile bootstrap interval.

    Seeded with `numpy.random.default_rng(seed)`, vectorised over resamples.
    No values -> (nan, nan, nan); one value -> a zero-width interval.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(arr.mean())
    if arr.size == 1 or n_samples <= 0:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    boot = np.concatenate([arr[idx].mean(axis=1) for idx in _draws(rng, arr.size, n_samples)])
    return _interval(mean, boot, alpha)


def wilson_interval(successes: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """(lo, hi): the Wilson score interval for a binomial proportion successes / n.

    Wilson (1927); Brown, Cai & DasGupta (2001), eq. (4):
    centre (k + z^2/2) / (n + z^2), half-width z sqrt(n p q + z^2/4) / (n + z^2)
    with p = k / n, q = 1 - p and z the 1 - alpha/2 normal quantile. At k = 0
    it is [0, z^2 / (n + z^2)], not [0, 0]. n = 0 -> (nan, nan).
    """
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes={successes} must lie in [0, n={n}]")
    z = _z(alpha)
    p = successes / n
    denom = n + z * z
    centre = (successes + z * z / 2) / denom
    half = z * math.sqrt(n * p * (1 - p) + z * z / 4) / denom
    # exact at the bounds (no rounding drift past 0 or 1, and the point estimate always inside)
    lo = 0.0 if successes == 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if successes == n else min(1.0, max(p, centre + half))
    return lo, hi


def _z(alpha: float) -> float:
    """The 1 - alpha/2 quantile of the standard normal."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must lie strictly between 0 and 1, e.g. 0.05 for a 95% interval")
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - alpha / 2)


def is_binary(values: np.ndarray) -> bool:
    """True when there is at least one non-NaN value and every non-NaN value is exactly 0 or 1."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[~np.isnan(arr)]
    return bool(arr.size) and bool(np.all((arr == 0.0) | (arr == 1.0)))


def mean_interval(
    values: Sequence[float] | np.ndarray, n_samples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float, str]:
    """(mean, lo, hi, method): Wilson for binary values, else `bootstrap_ci`; NaN values are ignored."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[~np.isnan(arr)]
    if is_binary(arr):
        lo, hi = wilson_interval(float(arr.sum()), int(arr.size), alpha)
        return float(arr.mean()), lo, hi, "wilson"
    mean, lo, hi = bootstrap_ci(arr, n_samples, seed, alpha)
    return mean, lo, hi, "bootstrap"


def bootstrap_cell_metric(
    m: Metric,
    records: Sequence[Mapping[str, Any]] | Any,
    ctx: MetricContext | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float, int]:
    """(value, lo, hi, n) for a cell-level metric, resampling the examples it applies to.

    With `stats`/`reduce` (see `cell_metric`) the per-example statistics are
    computed once and resampled; otherwise the records are resampled and the
    metric recomputed on each resample (slower, but works for any metric).
    """
    recs = as_records(records)
    ctx = ctx or MetricContext()
    if m.stats is not None and m.reduce is not None:
        return _bootstrap_stats(m, m.stats(recs, ctx), n_samples, seed, alpha)
    rng = np.random.default_rng(seed)
    usable = [r for r in recs if m.applies(r)]
    n = len(usable)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    point = m(usable, ctx)[0]
    if n == 1 or n_samples <= 0 or math.isnan(point):
        return point, point, point, n
    boot = [m([usable[j] for j in i], ctx)[0] for idx in _draws(rng, n, n_samples) for i in idx]
    value, lo, hi = _interval(point, np.asarray(boot, dtype=np.float64), alpha)
    return value, lo, hi, n


def _bootstrap_stats(m: Metric, stats: np.ndarray, n_samples: int, seed: int,
                     alpha: float) -> tuple[float, float, float, int]:
    """A cell metric's (value, lo, hi, n) from its per-example `stats` rows (NaN rows left out), resampled."""
    assert m.reduce is not None
    rows = valid_rows(stats)
    n = len(rows)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    point = float(m.reduce(rows))
    if n == 1 or n_samples <= 0:
        return point, point, point, n
    rng = np.random.default_rng(seed)
    boot = [m.reduce(rows[i]) for idx in _draws(rng, n, n_samples) for i in idx]
    value, lo, hi = _interval(point, np.asarray(boot, dtype=np.float64), alpha)
    return value, lo, hi, n


def score_rows(m: Metric, rows: np.ndarray, ctx: MetricContext | None = None, n_samples: int = 1000,
               seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float, int, str]:
    """(mean, lo, hi, n, interval) of a poolable metric from its per-record rows (`Metric.rows`) over a cell.

    The one place a cell's score is made from rows: the whole cell's records and the rows kept per shard
    (stacked in the cell's shard order) go through it alike, so an incrementally scored cell gets exactly the
    numbers of a cell scored from all its records."""
    ctx = ctx or MetricContext()
    if m.unit == "cell":
        mean, lo, hi, n = _bootstrap_stats(m, rows, n_samples, seed, alpha)
        return mean, lo, hi, n, "bootstrap"
    if m.unit == "group":
        assert m.groups is not None
        values = np.asarray([float(v) for v in m.groups(valid_rows(rows), ctx)], dtype=np.float64)
    else:
        values = np.asarray(rows, dtype=np.float64).reshape(-1)
    n = int((~np.isnan(values)).sum())
    mean, lo, hi, method = mean_interval(values, n_samples, seed, alpha)
    return mean, lo, hi, n, method


def summarise(
    names: Sequence[str],
    records: Sequence[Mapping[str, Any]] | Any,
    ctx: MetricContext | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, CellScore]:
    """Score one cell's records on each metric in `names`.

    Every metric uses the same `seed`, so a cell's interval does not depend on
    which other metrics were asked for. A metric with nothing to score (no
    applicable example) gets mean NaN and n 0 rather than an error. Per-example
    (or per-group) scores that are all 0 or 1 get the Wilson interval
    (`mean_interval`, see the module docstring); the rest a bootstrap one.
    """
    recs = as_records(records)
    ctx = ctx or MetricContext()
    out: dict[str, CellScore] = {}
    for name in names:
        m = get(name)
        if m.poolable:  # the same path as a cell pooled from its shards' rows (summarise_rows)
            out[name] = _score(m, *score_rows(m, m.rows(recs, ctx), ctx, n_samples, seed, alpha), m.chance(recs))
            continue
        method = "bootstrap"
        if m.unit == "cell":
            mean, lo, hi, n = bootstrap_cell_metric(m, recs, ctx, n_samples, seed, alpha)
        else:
            values = np.asarray(m(recs, ctx), dtype=np.float64)
            n = int((~np.isnan(values)).sum())
            mean, lo, hi, method = mean_interval(values, n_samples, seed, alpha)
        out[name] = _score(m, mean, lo, hi, n, method, m.chance(recs))
    return out


def summarise_rows(
    names: Sequence[str],
    rows: Mapping[str, np.ndarray],
    chance_rows: Mapping[str, np.ndarray | None],
    ctx: MetricContext | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, CellScore]:
    """`summarise` of poolable metrics from their per-record rows over the cell (`Metric.rows`, `chance_rows`),
    e.g. rows kept per shard and stacked in the cell's order: the same numbers as from the records."""
    out: dict[str, CellScore] = {}
    for name in names:
        m = get(name)
        c = chance_rows.get(name)
        chance = RecordChance.pooled(c) if c is not None else None
        out[name] = _score(m, *score_rows(m, rows[name], ctx, n_samples, seed, alpha), chance)
    return out


def _score(m: Metric, mean: float, lo: float, hi: float, n: int, method: str, chance: float | None) -> CellScore:
    return CellScore(name=m.name, mean=mean, lo=lo, hi=hi, n=n, chance=chance, kind=m.kind,
                     higher_is_better=m.higher_is_better, unit=m.unit, interval=method)
