"""Scores of a scaling curve from the literature: emergence score, linearity, breakthroughness.

A curve is scores `y` at scales `x` (parameters, FLOPs, training steps); only
the order of `x` matters to these scores, which look at consecutive steps
y_i - y_{i-1} after sorting by `x`. All three share the numerator

    I(y) = sign(argmax_i y_i - argmin_i y_i) * (max_i y_i - min_i y_i),

the total change, signed + when the best score comes at a larger scale than
the worst. They differ in how the typical step is measured:

- Srivastava et al. 2022 ("Beyond the Imitation Game", BIG-bench, arXiv:2206.04615),
  Appendix B "Definitions of linearity and breakthroughness", over normalised scores:
  linearity L = I(y) / RootMeanSquare({y_{i+1} - y_i}),
  breakthroughness B = I(y) / RootMedianSquare({y_{i+1} - y_i}).
  (The same RMS / root-median-square split is how Zhao et al. 2025,
  "Random Scaling of Emergent Capabilities", arXiv:2502.17356, apply them.)
- Schaeffer, Miranda & Koyejo 2023 ("Are Emergent Abilities of Large Language
  Models a Mirage?", sec. 4) write the "emergence score" they take from BIG-bench as
  sign(argmax y - argmin y) (max y - min y) / sqrt(median_i (y_i - y_{i-1})^2),
  i.e. B applied to the raw metric values.

Reading them: for n points on an evenly rising line every step is equal, so
all three equal n - 1; a curve's score is to be compared with that baseline,
never with a fixed number. A single jump among flat steps makes the median
squared step 0 and the emergence score / breakthroughness infinite; these
functions then return +/- math.inf instead of dividing by zero. L, B and the
emergence score are unchanged by a positive affine map of y, so normalising
with `normalized_score` matters only for its direction: with low = chance and
high = best it turns a lower-is-better metric into a higher-is-better one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _curve(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """y sorted by ascending x (stable), dropping points where x or y is NaN."""
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length: {xs.size} vs {ys.size}")
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    return ys[np.argsort(xs, kind="stable")]


def total_change(y: np.ndarray) -> float:
    """I(y) = sign(argmax y - argmin y) (max y - min y), argmax/argmin at the first occurrence."""
    span = float(np.max(y) - np.min(y))
    if span == 0.0:
        return 0.0
    return math.copysign(span, float(np.argmax(y)) - float(np.argmin(y)))


def _ratio(change: float, typical_step: float) -> float:
    if change == 0.0:
        return 0.0  # flat curve: no change, whatever the steps
    if typical_step == 0.0:
        return math.copysign(math.inf, change)
    return change / typical_step


def emergence_score(x: ArrayLike, y: ArrayLike) -> float:
    """Schaeffer et al. 2023's emergence score: I(y) / sqrt(median_i (y_i - y_{i-1})^2), sorted by x.

    Returns +/-inf (sign of I(y)) when the median squared step is 0 but the
    curve moves, e.g. exact match stuck at 0 for most sizes then jumping; 0.0
    for a flat curve; NaN with fewer than two points. NaN points are dropped.
    """
    ys = _curve(x, y)
    if ys.size < 2:
        return math.nan
    return _ratio(total_change(ys), math.sqrt(float(np.median(np.diff(ys) ** 2))))


def breakthroughness(x: ArrayLike, y: ArrayLike) -> float:
    """BIG-bench's breakthroughness B = I(y) / RootMedianSquare(y_{i+1} - y_i) over normalised scores.

    Srivastava et al. 2022, Appendix B. Large when the change happens in a few
    steps much bigger than the typical one. Same edge cases as `emergence_score`
    (of which it is the same formula); pass `normalized_score` values as `y`.
    """
    return emergence_score(x, y)


def linearity(x: ArrayLike, y: ArrayLike) -> float:
    """BIG-bench's linearity L = I(y) / RootMeanSquare(y_{i+1} - y_i) over normalised scores.

    Srivastava et al. 2022, Appendix B. Largest (n - 1) when the change is
    spread evenly over the steps; a single jump among n - 1 steps gives
    sqrt(n - 1). 0.0 for a flat curve, NaN with fewer than two points.
    """
    ys = _curve(x, y)
    if ys.size < 2:
        return math.nan
    return _ratio(total_change(ys), math.sqrt(float(np.mean(np.diff(ys) ** 2))))


def trend_lag(x: ArrayLike, y: ArrayLike, i: int, reach: float = 1.0) -> float:
    """How far size i lags a steady per-decade rise from the first size to the rise's end: e_i - f_i.

    With sizes sorted by x, f_i = (y_i - y_0) / (y_last - y_0) is the share of
    the rise made by size i. The rise ends at the first size k that has made
    `reach` of it (f_k >= reach; 1.0: the last size), and e_i = log10(x_i / x_0)
    / log10(x_k / x_0) is the share a straight line in log10(x) from the first
    size to size k would have made by size i. 0 on such a line, positive when
    the curve is still near its start while much of the scale it took to rise
    is spent (the "near baseline, then a rise" of Wei et al. 2022, read with
    the spacing of x: a floor spanning a fifth of a decade before a rise over
    four lags little, however flat it is), negative for a rise that comes
    early. Ending the line where the rise ends (reach < 1), not at the largest
    size, keeps sizes added on a plateau above the rise from changing the
    verdict on the rise itself. NaN when y does not change from first to last
    or x does not either.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    if not 0 <= i < len(xs):
        raise ValueError(f"trend_lag: size index i={i} is outside the {len(xs)} sizes")
    if not 0 < reach <= 1:
        raise ValueError(f"trend_lag: reach={reach} must lie in (0, 1]")
    gain = float(ys[-1] - ys[0])
    if gain == 0 or xs[-1] == xs[0]:
        return math.nan
    f = (ys - ys[0]) / gain
    k = next((m for m in range(len(xs)) if f[m] >= reach and xs[m] > xs[0]), len(xs) - 1)
    span = float(np.log10(xs[k] / xs[0]))
    return float(min(np.log10(xs[i] / xs[0]) / span, 1.0) - f[i])


def normalized_score(score: float | ArrayLike, low: float, high: float) -> float | np.ndarray:
    """BIG-bench's normalised score 100 (score - low) / (high - low): chance = 0, perfect = 100.

    `low` is the random-chance score and `high` the best possible (Srivastava
    et al. 2022; BIG-bench's json_task.py sets low_score to the multiple-choice
    chance score). `high` < `low` is allowed, for lower-is-better metrics;
    `high` == `low` raises.
    """
    if high == low:
        raise ValueError(f"normalized_score needs high != low, got both {low}")
    if np.ndim(score) == 0:
        return 100.0 * (float(score) - low) / (high - low)
    return 100.0 * (np.asarray(score, dtype=np.float64) - low) / (high - low)


def bigbench_normalized(score: float, chance: float | None, best: float | None) -> float | None:
    """`normalized_score` with chance as low and the perfect score as high, or None where either is unknown.

    None too when chance equals the perfect score (nothing to normalise) or
    the score is not finite. 0 is chance, 100 perfect, negative below chance.
    """
    if chance is None or best is None or not math.isfinite(score) or not math.isfinite(chance) or chance == best:
        return None
    return float(normalized_score(score, chance, best))
