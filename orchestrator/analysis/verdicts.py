"""Verdicts on scaling curves: flat, smooth, emergent, inverse or U-shaped, with the numbers behind each. Pure.

What a verdict must respect (docs/science.md):

- The emergence score (Schaeffer, Miranda & Koyejo 2023, sec. 4) is compared
  with n - 1, its value for n sizes on an evenly rising line, never with a
  fixed number; it is infinite when the median squared step is 0, and that
  case is reported as such.
- A change is real only if it clears the bootstrap intervals (and a minimum
  effect): with a few hundred examples exact match reads 0 until the model is
  large, so resolution and the spacing of sizes are reported beside the score.
- Continuous metrics are judged on the axis where their law is linear.
  Per-token cross-entropy falls as a power law in N (Schaeffer et al. 2023,
  sec. 2; Kaplan et al. 2020), so a loss-like quantity L(N) = c N^-a is a
  straight line in log10 L vs log10 N. Hence, with ``continuous_axis =
  "power_law"`` (the default):

  ======================  ==================  ===========================================
  metric                  judged as           why
  ======================  ==================  ===========================================
  token_edit_distance     log10(distance)     ~ L x per-token error (Schaeffer sec. 2)
  char_edit_distance      log10(distance)     same argument over characters
  target_logprob          log10(-log p)       -log p(target) = L x cross-entropy
  target_token_prob       log10(-ln p)        -ln p = cross-entropy per token (the
                                              log(-log) axis of Hu et al. 2023, PassUntil)
  correct_option_prob     log10(-ln p)        cross-entropy on the correct option
  brier_score, others     the metric itself   no power law established; Schaeffer et al.
                                              show Brier smooth on its own axis
  ======================  ==================  ===========================================

  These axes are "lower is better". A loss of exactly 0 (a perfect cell) has
  no logarithm; such a curve is judged on its own axis, with a caveat.
  Discontinuous metrics (exact match, MC grade, subset accuracy) are judged on
  their own axis: that is the axis on which emergence is claimed.
- Orientation: every score is turned so that "up is better" (lower-is-better
  metrics and the loss axes above are negated) before any rule is applied.

The rules, with s the oriented score on the judged axis and [l, h] its
oriented interval (thresholds are `AnalysisConfig` fields):

1. flat: fewer than 2 sizes, or the intervals of the best and the worst size
   overlap, or max s - min s < min_effect (min_effect_log10 on a log axis).
2. u_shaped (n >= min_sizes): the worst size m is interior, the first size is
   reliably above it (l_0 > h_m) and so is the last (l_last > h_m)
   (Wei et al. 2022, "Inverse scaling can become U-shaped").
3. inverse: the last size is reliably below the first (h_last < l_0); or
   (n >= min_sizes) an inverted U: a reliable rise to an interior peak M and a
   reliable decline after it (l_M > h_0 and l_M > h_last).
4. rising, i.e. the last size reliably above the first (l_last > h_0):
   emergent if n >= min_sizes, the rise is sharp -- the emergence score is
   infinite or at least emergence_ratio x (n - 1), or one step between adjacent
   sizes carries at least max_step_share of the whole change (with few sizes the
   Schaeffer score cannot exceed n - 1 by much: [0, 0, 0, .3, .9] scores 4.2 vs
   4) -- and the first baseline_sizes sizes stay near the
   first one (within early_rise_fraction of the total change): near baseline,
   then a sharp rise (Wei et al. 2022; Srivastava et al. 2022, "breakthrough").
   Otherwise smooth; a smooth curve whose Spearman rho < min_monotonicity or
   whose R^2 against log10(params) < smooth_r2 is still smooth (it improves
   without a sharp step) but its reason says so.
5. anything else (best and worst differ but first and last do not, with no
   U or inverted U): flat, "no reliable trend with scale".

Without intervals (NaN lo/hi) a difference counts as reliable when it reaches
the minimum effect, and the verdict carries a caveat saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.scores import bigbench_normalized, emergence_score, linearity, total_change
from orchestrator.config import AnalysisConfig

LABELS = ("flat", "smooth", "emergent", "inverse", "u_shaped")

# metric -> (axis name, transform of raw values into a loss whose log10 is linear in log10 N)
_Loss = Callable[[np.ndarray], np.ndarray]
POWER_LAW_AXES: dict[str, tuple[str, _Loss]] = {
    "token_edit_distance": ("log10(distance)", lambda v: v),
    "char_edit_distance": ("log10(distance)", lambda v: v),
    "target_logprob": ("log10(-log p)", lambda v: -v),
    "target_token_prob": ("log10(-ln p)", lambda v: -np.log(v)),
    "correct_option_prob": ("log10(-ln p)", lambda v: -np.log(v)),
}


@dataclass(frozen=True)
class Verdict:
    """The label of one curve and every number the rules looked at.

    Scores named *on the judged axis* are oriented so that positive means
    "improves with scale". `breakthroughness` and `linearity` are BIG-bench's
    (Srivastava et al. 2022, App. B) on the metric's own axis, oriented, which
    equals their value on the normalised score. `emergence_score` is
    Schaeffer et al.'s on the judged axis; `baseline` = n - 1 is what an evenly
    rising line scores; `emergence_ratio` = emergence_score / baseline.
    """

    task: str
    prompt: str
    metric: str
    kind: str
    label: str
    reason: str
    n_sizes: int
    axis: str
    higher_is_better: bool
    emergence_score: float
    baseline: float
    emergence_ratio: float
    linearity: float
    breakthroughness: float
    total_change: float  # I(s) on the judged axis: signed span, + when the best size is larger than the worst
    net_change: float  # s_last - s_first on the judged axis
    rise_outside_interval: bool  # last size reliably above the first
    decline_outside_interval: bool  # last size reliably below the first
    monotonicity: float  # Spearman rank correlation of s with params
    log_fit_slope: float  # d s / d log10(params): improvement per decade on the judged axis
    log_fit_r2: float
    transition_scale: float | None  # smallest params from which the score stays reliably above baseline
    transition_model: str | None
    decades_per_step: float  # median log10 spacing of the sizes
    max_gap_decades: float  # widest log10 gap between consecutive sizes
    interval_width: float  # median (hi - lo) on the metric's own axis: the resolution
    normalized_first: float  # BIG-bench's normalised score (chance 0, perfect 100) at the smallest size; NaN: no bounds
    normalized_last: float  # ... and at the largest size
    caveats: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.prompt}/{self.metric}"


# --------------------------------------------------------------------------- public API


def judge(curve: Curve, cfg: AnalysisConfig | None = None) -> Verdict:
    """Label one curve by the rules in this module's docstring and return the numbers behind the label."""
    cfg = cfg or AnalysisConfig()
    x, y, lo, hi, models = _points(curve)
    n = len(x)
    caveats: list[str] = []
    axis, z, zlo, zhi, lower_better = _judging_axis(curve, y, lo, hi, cfg, caveats)
    s, sl, sh = _orient(z, zlo, zhi, lower_better)
    if n and (np.any(np.isnan(sl)) or np.any(np.isnan(sh))):
        caveats.append("no bootstrap intervals: a change counts when it reaches the minimum effect")
    min_eff = cfg.min_effect if axis == "linear" else cfg.min_effect_log10

    def above(i: int, j: int) -> bool:
        """Size i reliably above size j: intervals apart, else (no intervals) by at least the minimum effect."""
        if math.isnan(sl[i]) or math.isnan(sh[j]):
            return bool(s[i] - s[j] >= min_eff)
        return bool(sl[i] > sh[j] and s[i] - s[j] >= min_eff)

    o_raw = _oriented_raw(y, curve.higher_is_better)
    decades = np.diff(np.log10(x)) if n > 1 else np.array([])
    t_idx = transition_index(curve, cfg.min_effect)
    nums = dict(
        n_sizes=n,
        axis=axis,
        emergence_score=emergence_score(x, s) if n >= 2 else math.nan,
        baseline=float(n - 1) if n >= 2 else math.nan,
        linearity=linearity(x, o_raw) if n >= 2 else math.nan,
        breakthroughness=emergence_score(x, o_raw) if n >= 2 else math.nan,
        total_change=total_change(s) if n else math.nan,
        net_change=float(s[-1] - s[0]) if n else math.nan,
        rise_outside_interval=n >= 2 and above(n - 1, 0),
        decline_outside_interval=n >= 2 and above(0, n - 1),
        monotonicity=_spearman(x, s),
        decades_per_step=float(np.median(decades)) if decades.size else math.nan,
        max_gap_decades=float(np.max(decades)) if decades.size else math.nan,
        interval_width=float(np.nanmedian(hi - lo)) if n and np.any(np.isfinite(hi - lo)) else math.nan,
        transition_scale=None if t_idx is None else float(curve.x[t_idx]),
        transition_model=None if t_idx is None or t_idx >= len(curve.models) else curve.models[t_idx],
        normalized_first=_normalized(curve, y[0]) if n else math.nan,
        normalized_last=_normalized(curve, y[-1]) if n else math.nan,
    )
    nums["emergence_ratio"] = _ratio(nums["emergence_score"], nums["baseline"])
    nums["log_fit_slope"], nums["log_fit_r2"] = _log_fit(x, s)

    label, reason = _rules(x, s, sl, sh, models, above, min_eff, nums, cfg, caveats)
    return Verdict(
        task=curve.task,
        prompt=curve.prompt,
        metric=curve.metric,
        kind=curve.kind,
        label=label,
        reason=reason,
        higher_is_better=curve.higher_is_better,
        caveats=tuple(caveats),
        **nums,
    )


def judge_all(curves: Sequence[Curve], cfg: AnalysisConfig | None = None) -> list[Verdict]:
    """`judge` every curve, in the curves' order."""
    return [judge(c, cfg) for c in curves]


def transition_index(curve: Curve, min_effect: float = 0.0) -> int | None:
    """Index of the smallest size from which the score stays reliably above baseline, else None.

    Baseline is the metric's chance score, or the first size's upper bound when
    chance is None; "reliably above" means lo > baseline (hi < baseline for a
    lower-is-better metric), or, where the interval is missing (published
    scores), the point itself at least `min_effect` past the baseline. The
    score must stay there at every larger size, so one lucky small model does
    not set the scale (cf. Wei et al. 2022's "emergence
    threshold", read off the curve where it leaves chance).
    """
    x, y, lo, hi, _ = _points(curve)
    if not len(x):
        return None
    up = curve.higher_is_better
    if curve.chance is not None and math.isfinite(curve.chance):
        thr = float(curve.chance)
    else:
        edge = hi[0] if up else lo[0]
        thr = float(edge if math.isfinite(edge) else y[0])
    bound = lo if up else hi
    reliable = [
        (b > thr if up else b < thr) if math.isfinite(b) else _past(v - thr if up else thr - v, min_effect)
        for v, b in zip(y, bound, strict=True)
    ]
    first = None
    for i in range(len(x) - 1, -1, -1):
        if not reliable[i]:
            break
        first = i
    if first is None:
        return None
    # map back to the curve's own indexing (points with NaN x/y were dropped)
    return curve.x.index(float(x[first])) if float(x[first]) in curve.x else first


def _past(gap: float, min_effect: float) -> bool:
    """A point without an interval is above baseline when it clears the minimum effect (strictly, when that is 0)."""
    return gap >= min_effect if min_effect > 0 else gap > 0


def transition_scale(curve: Curve, min_effect: float = 0.0) -> float | None:
    """Parameters at `transition_index`, or None when the score never stays reliably above baseline."""
    i = transition_index(curve, min_effect)
    return None if i is None else float(curve.x[i])


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per verdict, the columns of `Verdict` (caveats joined by '; ')."""
    rows = []
    for v in verdicts:
        row = asdict(v)
        row["caveats"] = "; ".join(v.caveats)
        rows.append(row)
    cols = list(Verdict.__dataclass_fields__)
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- the rules


def _rules(x, s, sl, sh, models, above, min_eff, nums, cfg, caveats) -> tuple[str, str]:
    n = len(s)
    if n < 2:
        return "flat", f"{n} size(s): a scaling verdict needs at least 2"
    best, worst = int(np.argmax(s)), int(np.argmin(s))
    span = float(s[best] - s[worst])
    if span < min_eff:
        return "flat", f"total change {span:.3g} is below the minimum effect {min_eff:g} on the {nums['axis']} axis"
    if not above(best, worst):
        return "flat", (
            f"the best ({_size(x[best])}) and worst ({_size(x[worst])}) sizes lie within each other's "
            "intervals: no reliable change"
        )

    if n >= cfg.min_sizes and 0 < worst < n - 1 and above(0, worst) and above(n - 1, worst):
        return "u_shaped", (
            f"declines reliably from {_size(x[0])} to a minimum at {_size(x[worst])}, then rises reliably "
            f"to {_size(x[-1])} (both changes outside the intervals)"
        )
    if nums["decline_outside_interval"]:
        return "inverse", (
            f"the largest size ({_size(x[-1])}) is reliably worse than the smallest ({_size(x[0])}): "
            f"change {float(s[-1] - s[0]):+.3g} on the {nums['axis']} axis"
        )
    if n >= cfg.min_sizes and 0 < best < n - 1 and above(best, 0) and above(best, n - 1):
        return "inverse", (
            f"inverted U: rises to a peak at {_size(x[best])}, then declines reliably to {_size(x[-1])} "
            "(inverse scaling past the peak)"
        )
    if not nums["rise_outside_interval"]:
        return "flat", (
            "the best and worst sizes differ, but the smallest and largest do not: no reliable trend with scale"
        )

    es, base, ratio = nums["emergence_score"], nums["baseline"], nums["emergence_ratio"]
    k = min(max(cfg.baseline_sizes, 1), n - 1)
    early = float(np.max(s[:k] - s[0]))
    early_flat = early <= cfg.early_rise_fraction * span
    steps = np.diff(s)
    step_share = float(np.max(steps) / span) if span > 0 and len(steps) else 0.0
    sharp = (
        (math.isinf(es) and es > 0)
        or (math.isfinite(ratio) and ratio >= cfg.emergence_ratio)
        or step_share >= cfg.max_step_share
    )
    score_txt = f"emergence score {_num(es)} vs n-1 = {base:g}; largest step {step_share:.0%} of the change"
    if n >= cfg.min_sizes and sharp and early_flat:
        jump = int(np.argmax(np.diff(s)))
        gap = float(np.log10(x[jump + 1] / x[jump]))
        if math.isinf(es):
            caveats.append(
                "the median step is exactly 0 (the score sits at one value for most sizes, e.g. no exact match "
                "in a few hundred examples): resolution, not only the model, sets the sharpness; see the "
                "continuous metrics of the same outputs, or evaluate more examples (Hu et al. 2023, PassUntil)"
            )
        if gap > cfg.coarse_gap_decades:
            caveats.append(
                f"the sharpest step spans {gap:.2g} decades ({_size(x[jump])} to {_size(x[jump + 1])}): "
                "with sizes this far apart a gradual sigmoid also looks sudden"
            )
        return "emergent", (
            f"near baseline for the first {k} sizes, then rises reliably (sharpest step {_size(x[jump])} to "
            f"{_size(x[jump + 1])}); {score_txt}" + ("" if math.isinf(es) else f" (ratio {ratio:.2g})")
        )
    why_not = []
    if n < cfg.min_sizes:
        why_not.append(f"only {n} sizes")
    if not sharp:
        why_not.append(score_txt)
    if not early_flat:
        why_not.append(f"already rising over the first {k} sizes")
    shape = []
    if not (math.isfinite(nums["monotonicity"]) and nums["monotonicity"] >= cfg.min_monotonicity):
        shape.append(f"not monotone (Spearman rho {_num(nums['monotonicity'])})")
    if not (math.isfinite(nums["log_fit_r2"]) and nums["log_fit_r2"] >= cfg.smooth_r2):
        shape.append(f"not linear in log-params (R^2 {_num(nums['log_fit_r2'])})")
    head = "rises reliably but " + ", ".join(shape) if shape else "rises reliably and roughly linearly in log-params"
    return "smooth", (
        f"{head}; slope {nums['log_fit_slope']:+.3g} per decade on the {nums['axis']} axis; "
        f"not a sharp jump ({'; '.join(why_not)})"
    )


# --------------------------------------------------------------------------- helpers


def _points(curve: Curve) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Arrays sorted by x, keeping points with a finite positive x and a finite y."""
    x = np.asarray(curve.x, dtype=np.float64)
    y = np.asarray(curve.y, dtype=np.float64)
    n = len(x)
    lo = np.asarray(curve.lo, dtype=np.float64) if len(curve.lo) == n else np.full(n, np.nan)
    hi = np.asarray(curve.hi, dtype=np.float64) if len(curve.hi) == n else np.full(n, np.nan)
    models = list(curve.models) if len(curve.models) == n else [""] * n
    keep = np.isfinite(x) & (x > 0) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    kept = [m for m, k in zip(models, keep, strict=True) if k]
    return x[keep][order], y[keep][order], lo[keep][order], hi[keep][order], [kept[i] for i in order]


def _judging_axis(
    curve: Curve, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, cfg: AnalysisConfig, caveats: list[str]
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, bool]:
    """(axis name, values, lo, hi, lower_is_better) on the axis the curve is judged on."""
    linear = ("linear", y, lo, hi, not curve.higher_is_better)
    if curve.kind == "discontinuous" or cfg.continuous_axis == "linear" or curve.metric not in POWER_LAW_AXES:
        return linear
    name, to_loss = POWER_LAW_AXES[curve.metric]
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = to_loss(y)
        if not np.all(loss > 0):
            caveats.append(f"{name} needs a positive loss at every size (some are 0): judged on the linear axis")
            return linear
        z = np.log10(loss)
        ends = np.log10(np.clip(np.stack([to_loss(lo), to_loss(hi)]), 0.0, None))  # a 0 bound -> -inf
    return name, z, np.fmin(ends[0], ends[1]), np.fmax(ends[0], ends[1]), True


def _orient(z: np.ndarray, lo: np.ndarray, hi: np.ndarray, lower_better: bool):
    if lower_better:
        return -z, -hi, -lo
    return z, lo, hi


def _oriented_raw(y: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return y if higher_is_better else -y


def _normalized(curve: Curve, score: float) -> float:
    v = bigbench_normalized(float(score), curve.chance, curve.best)
    return math.nan if v is None else v


def _ratio(score: float, base: float) -> float:
    if not math.isfinite(base) or base <= 0 or math.isnan(score):
        return math.nan
    return score / base


def _spearman(x: np.ndarray, s: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant or n < 2."""
    if len(s) < 2:
        return math.nan
    rx = pd.Series(x).rank().to_numpy()
    rs = pd.Series(s).rank().to_numpy()
    if np.std(rx) == 0 or np.std(rs) == 0:
        return math.nan
    return float(np.corrcoef(rx, rs)[0, 1])


def _log_fit(x: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """Least-squares s = a + b log10(x): (b, R^2); R^2 is NaN for a constant curve or fewer than 2 sizes."""
    if len(s) < 2:
        return math.nan, math.nan
    lx = np.log10(x)
    if np.ptp(lx) == 0:
        return math.nan, math.nan
    b, a = np.polyfit(lx, s, 1)
    ss_tot = float(np.sum((s - s.mean()) ** 2))
    if ss_tot == 0:
        return float(b), math.nan
    return float(b), 1.0 - float(np.sum((s - (a + b * lx)) ** 2)) / ss_tot


def _size(v: float) -> str:
    for unit, f in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= f:
            return f"{v / f:.3g}{unit}"
    return f"{v:.3g}"


def _num(v: float) -> str:
    return "inf" if math.isinf(v) and v > 0 else "-inf" if math.isinf(v) else f"{v:.3g}"


def format_params(v: float | None) -> str:
    """Parameter count as 1.3B / 350M / 14K; '' for None."""
    return "" if v is None or not math.isfinite(v) else _size(v)
