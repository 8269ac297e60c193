"""Verdicts on scaling curves: flat, smooth, emergent, inverse or U-shaped, with the numbers behind each. Pure.

What a verdict must respect (docs/science.md):

**The axis.** Every score is oriented so that up is better, then put on a
normalised axis u, so that effect sizes mean the same on every metric:

- chance and perfect score known: u = (y - chance) / (best - chance), BIG-bench's
  normalised score / 100 (Srivastava et al. 2022): chance 0, perfect 1;
- only the perfect score known (edit distances, log-probabilities): u =
  (y - worst) / (best - worst), with `worst` the curve's worst size: the share
  of the gap to perfect that scale closes;
- only chance known: the metric's units above chance (effects in metric units);
- neither: the metric's own units (effects in those units, no "near chance" test).

Continuous metrics are judged on this, their own axis, like the discontinuous
ones (`continuous_axis = "linear"`, the default): the question "does the
score jump?" is then asked of every metric on the same kind of axis. The
power-law axis (log10 of a loss: distance, -log p, -ln p; per-token
cross-entropy falls as a power law in N, Schaeffer et al. 2023 sec. 2, Kaplan
et al. 2020) is judged too and shown beside it (`alt_axis`, `alt_label`), but
it does not decide: log(distance) falls without bound as distance -> 0, so a
model approaching perfection would look emergent there.
`continuous_axis = "power_law"` swaps the two.

**Significance.** Sizes i and j differ reliably when the gap clears both a
z-test built from their 95% intervals and the minimum effect:
z = 1.96 (u_i - u_j) / sqrt(h_i^2 + h_j^2) >= `z`, with h the half-widths that
face each other (a difference of two estimates, not the overlap of two
intervals, which is too strict: Schenker & Gentleman 2001, Am. Stat. 55:182),
and u_i - u_j >= `min_effect`. Binary scores carry Wilson intervals
(metrics/aggregate.py), so a cell at 0/n is not treated as exact. Without
intervals (published scores) the effect alone decides, with a caveat.

**The rules**, in order (thresholds are `AnalysisConfig` fields; f_i is the
share of the rise u_last - u_0 made by size i, e_i = log10(x_i/x_0) / log10(x_k/x_0)
the share a steady per-decade rise from the first size to size k would have
made by then, with k the first size that made 1 - floor_fraction of the rise
(where the rise ends, so plateau sizes added above it change nothing); the
rise is measured to the largest size, never to the best one, which among many
noisy sizes is biased upwards):

1. flat: fewer than 2 sizes; or the span max u - min u < min_effect ("at the
   floor" when it also stays within floor_level of chance); or the best and
   worst sizes do not differ reliably.
2. u_shaped (n >= min_sizes + 1): the worst interior size m is reliably below
   the first and the last size, and the dip is sustained: at least dip_sizes
   interior sizes are each reliably below both ends (Wei et al. 2022,
   "Inverse scaling can become U-shaped"). One bad model or checkpoint is one
   size, not a U.
3. inverse: the last size reliably below the first, sustained (n >= 3: the
   next-to-last size reliably below the first too); or an inverted U: a
   reliable rise to an interior peak M, then at least dip_sizes later sizes
   reliably below it, the last included, giving back at least
   inverse_fraction of the rise (u_M - u_last >= inverse_fraction (u_M - u_0)).
   A +0.70 rise that ends 0.03 below its peak is not inverse scaling.
4. no reliable rise (last vs first) -> flat, "no reliable trend with scale".
5. emergent, when the curve rises reliably and (n >= min_sizes):
   - floor: the first sizes made at most floor_fraction of the rise, and
     there are at least two of them;
   - delay: at the floor's last size j, e_j - f_j >= min_delay: the curve lags
     a straight line in log10(x) by that share of its rise, so a jump across
     a gap in x much wider than the floor it follows is not mistaken for a
     sharp one (spacing-aware);
   - near chance (metrics with a chance score): the floor's mean u <= floor_level.
     A discontinuous metric without a chance score cannot be tested against
     chance: an emergent call on it is borderline, with a caveat saying so;
   - not at the floor: the rise u_last - u_0 >= emergent_min_rise (in metric
     units where the metric has no perfect score; not on a log axis);
   - the largest size is reliably above the floor's last size.
   Near chance, then well above it (Wei et al. 2022), past a task-dependent
   scale ("breakthrough", Srivastava et al. 2022). Otherwise smooth; its
   reason says what fell short, and whether it is monotone (Spearman rho >=
   min_monotonicity) and linear in log10(x) (R^2 >= smooth_r2).

**Confidence.** Each rule's statistic is compared with its threshold; all
of them are listed in `margins`, rule by rule. A verdict is "borderline" when
a statistic that decided it lies within `borderline` of its threshold,
relatively ((value - threshold) / |threshold|): a check of the rule that
fired, or the largest shortfall of a rule that did not fire (all its failed
checks would have to pass to change the label; a near miss of rule 1 counts
only when, past it, the curve would not be a clear flat anyway). Counts
(sizes, dip sizes) are never close. An emergent call that rests on the largest size alone is
borderline too, and so is every verdict on a curve that lacks a size the sweep planned (its cell has a
missing or failed shard: analysis/partial.py), with a caveat naming the missing sizes. Otherwise "clear".

**Transition scale** (`transition_index`): the smallest size from which the
score stays reliably above chance (or above the first size), by the same
test: interval clear of the baseline and at least the minimum effect past it.

The emergence score (Schaeffer, Miranda & Koyejo 2023, sec. 4), BIG-bench's
linearity and breakthroughness are reported beside the label and read against
n - 1 (an evenly rising line); they do not decide it: they ignore the spacing
of x, and with 4-8 sizes they score the textbook [0, 0, .01, .4, .8] (2.9)
below an evenly rising line (4).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.partial import PartialCell, missing_caveat, missing_for
from orchestrator.analysis.scores import bigbench_normalized, emergence_score, linearity, total_change, trend_lag
from orchestrator.config import AnalysisConfig

LABELS = ("flat", "smooth", "emergent", "inverse", "u_shaped")
CONFIDENCE = ("clear", "borderline")

# metric -> (axis name, transform of raw values into a loss whose log10 is linear in log10 N)
_Loss = Callable[[np.ndarray], np.ndarray]
POWER_LAW_AXES: dict[str, tuple[str, _Loss]] = {
    "token_edit_distance": ("log10(distance)", lambda v: v),
    "char_edit_distance": ("log10(distance)", lambda v: v),
    "target_logprob": ("log10(-log p)", lambda v: -v),
    "target_token_prob": ("log10(-ln p)", lambda v: -np.log(v)),
    "correct_option_prob": ("log10(-ln p)", lambda v: -np.log(v)),
}
_Z95 = 1.959963984540054  # the intervals are 95% ones: half-width / _Z95 is a standard error


@dataclass(frozen=True)
class Verdict:
    """The label of one curve and every number the rules looked at.

    Scores named *on the judged axis* are oriented so that positive means
    "improves with scale", on the normalised axis `axis` names (see the module
    docstring). `breakthroughness` and `linearity` are BIG-bench's
    (Srivastava et al. 2022, App. B) on the metric's own axis, oriented.
    `emergence_score` is Schaeffer et al.'s on the judged axis; `baseline` =
    n - 1 is what an evenly rising line scores. `confidence` is clear or
    borderline; `margins` lists every rule's statistic against its threshold.
    `alt_axis` / `alt_label` / `alt_confidence`: the same rules on the other
    axis of a continuous metric (the power-law one by default), shown, not
    deciding.
    """

    task: str
    prompt: str
    metric: str
    kind: str
    label: str
    confidence: str
    reason: str
    margins: str
    n_sizes: int
    axis: str
    higher_is_better: bool
    effect_size: float  # u_last - u_first on the judged axis (fraction of the range on a normalised axis)
    z_net: float  # z of last vs first from the intervals (NaN without intervals)
    delay: float  # emergent rule: e_j - f_j at the floor's end (NaN when there is no floor)
    floor_level: float  # mean u over the floor (NaN when there is no floor)
    emergence_score: float
    baseline: float
    emergence_ratio: float
    linearity: float
    breakthroughness: float
    total_change: float  # I(s) on the judged axis: signed span, + when the best size is larger than the worst
    net_change: float  # s_last - s_first on the judged axis
    rise_outside_interval: bool  # last size reliably above the first (z-test and minimum effect)
    decline_outside_interval: bool  # last size reliably below the first
    monotonicity: float  # Spearman rank correlation of s with x
    log_fit_slope: float  # d s / d log10(x): improvement per decade on the judged axis
    log_fit_r2: float
    transition_scale: float | None  # smallest x from which the score stays reliably above baseline
    transition_model: str | None
    decades_per_step: float  # median log10 spacing of the sizes
    max_gap_decades: float  # widest log10 gap between consecutive sizes
    interval_width: float  # median (hi - lo) on the metric's own axis: the resolution
    normalized_first: float  # BIG-bench's normalised score (chance 0, perfect 100) at the smallest size; NaN: no bounds
    normalized_last: float  # ... and at the largest size
    alt_axis: str = ""  # the other axis of a continuous metric ("" when there is none)
    alt_label: str = ""
    alt_confidence: str = ""
    alt_reason: str = ""
    caveats: tuple[str, ...] = field(default_factory=tuple)
    missing_sizes: str = ""  # planned sizes whose cells are incomplete (analysis/partial.py), "" when none

    @property
    def key(self) -> str:
        return f"{self.task}/{self.prompt}/{self.metric}"


# --------------------------------------------------------------------------- public API


def judge(curve: Curve, cfg: AnalysisConfig | None = None, missing: Sequence[PartialCell] = ()) -> Verdict:
    """Label one curve by the rules in this module's docstring and return the numbers behind the label.

    `missing` are the planned sizes of this curve whose cells are incomplete (partial.missing_for): the label
    is what the sizes present say, with a caveat naming the missing ones and its confidence capped at
    borderline, since a size that is not there can move a floor, a jump or a dip.
    """
    cfg = cfg or AnalysisConfig()
    if cfg.continuous_axis not in ("linear", "power_law"):
        raise ValueError(
            f"analysis.continuous_axis={cfg.continuous_axis!r} is unknown: use linear (the metric's own "
            "normalised axis) or power_law (log10 of its loss)"
        )
    x, y, lo, hi, models = _points(curve)
    n = len(x)
    caveats: list[str] = []
    curve = _check_best(curve, y, caveats)
    own = _own_axis(curve, y, lo, hi, cfg)
    power = _power_axis(curve, y, lo, hi, cfg) if curve.kind != "discontinuous" else None
    if power is not None and isinstance(power, str):
        caveats.append(power)
        power = None
    primary, alt = own, power
    if cfg.continuous_axis == "power_law" and power is not None:
        primary, alt = power, own
    if n and (np.any(np.isnan(primary.lo)) or np.any(np.isnan(primary.hi))):
        caveats.append("no bootstrap intervals or Wilson bounds: a change counts when it reaches the minimum effect")
    if primary.scale == "units" and n >= 2:
        caveats.append(
            "the metric declares no perfect score: effect sizes (minimum effect, emergent rise) are in its own "
            "units" + ("" if primary.has_chance else ", and with no chance score the 'near chance' test is skipped")
        )
    d = _decide(x, primary, models, cfg, caveats)
    confidence = d.confidence
    if d.label == "emergent" and curve.kind == "discontinuous" and not primary.has_chance:
        confidence = "borderline"
        caveats.append(
            "no chance score is known for this metric, so 'near chance' was not tested: the floor is only "
            "the curve's own lowest level (give the chance score, e.g. judge --chance TASK=VALUE)"
        )
    alt_d = _decide(x, alt, models, cfg, []) if alt is not None and n >= 2 else None
    if missing:
        caveats.append(missing_caveat(missing, n))
        confidence = "borderline"

    s, o_raw = primary.u, _oriented_raw(y, curve.higher_is_better)
    decades = np.diff(np.log10(x)) if n > 1 else np.array([])
    t_idx = transition_index(curve, cfg.min_effect)
    slope, r2 = _log_fit(x, s)
    es = emergence_score(x, s) if n >= 2 else math.nan
    base = float(n - 1) if n >= 2 else math.nan
    return Verdict(
        task=curve.task,
        prompt=curve.prompt,
        metric=curve.metric,
        kind=curve.kind,
        label=d.label,
        confidence=confidence,
        reason=d.reason,
        margins=d.margins,
        n_sizes=n,
        axis=primary.name,
        higher_is_better=curve.higher_is_better,
        effect_size=float(s[-1] - s[0]) if n else math.nan,
        z_net=d.z_net,
        delay=d.delay,
        floor_level=d.floor_level,
        emergence_score=es,
        baseline=base,
        emergence_ratio=_ratio(es, base),
        linearity=linearity(x, o_raw) if n >= 2 else math.nan,
        breakthroughness=emergence_score(x, o_raw) if n >= 2 else math.nan,
        total_change=total_change(s) if n else math.nan,
        net_change=float(s[-1] - s[0]) if n else math.nan,
        rise_outside_interval=d.rise,
        decline_outside_interval=d.decline,
        monotonicity=_spearman(x, s),
        log_fit_slope=slope,
        log_fit_r2=r2,
        transition_scale=None if t_idx is None else float(curve.x[t_idx]),
        transition_model=None if t_idx is None or t_idx >= len(curve.models) else curve.models[t_idx],
        decades_per_step=float(np.median(decades)) if decades.size else math.nan,
        max_gap_decades=float(np.max(decades)) if decades.size else math.nan,
        interval_width=float(np.nanmedian(hi - lo)) if n and np.any(np.isfinite(hi - lo)) else math.nan,
        normalized_first=_normalized(curve, y[0]) if n else math.nan,
        normalized_last=_normalized(curve, y[-1]) if n else math.nan,
        alt_axis="" if alt_d is None else alt.name,  # type: ignore[union-attr]
        alt_label="" if alt_d is None else alt_d.label,
        alt_confidence="" if alt_d is None else "borderline" if missing else alt_d.confidence,
        alt_reason="" if alt_d is None else alt_d.reason,
        caveats=tuple(caveats),
        missing_sizes=", ".join(p.model for p in missing),
    )


def judge_all(
    curves: Sequence[Curve], cfg: AnalysisConfig | None = None, partial: Sequence[PartialCell] = ()
) -> list[Verdict]:
    """`judge` every curve, in the curves' order; `partial` lists the sweep's incomplete cells (none by default)."""
    return [judge(c, cfg, missing_for(c.task, c.prompt, partial)) for c in curves]


def transition_index(curve: Curve, min_effect: float = 0.0) -> int | None:
    """Index of the smallest size from which the score stays reliably above baseline, else None.

    Baseline is the metric's chance score, or the first size's upper bound when
    chance is None. "Reliably above" is what the verdict rules call a change:
    significant and material. Significant: lo > baseline (hi < baseline for a
    lower-is-better metric); for binary scores lo is the Wilson bound, so a
    cell at 0/n is never above anything; without an interval (published
    scores) this part is skipped. Material: the point at least `min_effect`
    past the baseline (strictly past it when `min_effect` is 0), a fraction of
    the chance-to-perfect range where the curve has both, else metric units --
    with thousands of examples, 3.5% against 1.4% is significant but still the
    floor. The score must stay there at every larger size, so one lucky small
    model does not set the scale (cf. Wei et al. 2022's "emergence threshold",
    read off the curve where it leaves chance).
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
    eff = min_effect * _range(curve)
    bound = lo if up else hi
    reliable = [
        (not math.isfinite(b) or (b > thr if up else b < thr)) and _past(v - thr if up else thr - v, eff)
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


def _range(curve: Curve) -> float:
    """|best - chance| where the curve has both (so min_effect is a fraction of it), else 1 (metric units)."""
    c, b = curve.chance, curve.best
    if c is not None and b is not None and math.isfinite(c) and math.isfinite(b) and c != b:
        return abs(b - c)
    return 1.0


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


# --------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class _Axis:
    """Oriented (up = better) values u with their interval [lo, hi] on one axis."""

    name: str
    u: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    scale: str  # "normalised" (effects are fractions of a range) | "units" (the metric's) | "log" (decades)
    has_chance: bool  # u = 0 is the chance score
    min_effect: float


def _check_best(curve: Curve, y: np.ndarray, caveats: list[str]) -> Curve:
    """The curve without its declared perfect score when a value lies beyond it: the scores are on another scale.

    E.g. an F1 or BLEU reported on 0-100 against a perfect score of 1: read
    against it, a rising curve would turn upside down (the worst size would be
    the best). Judged in the metric's units instead, with a caveat.
    """
    b = curve.best
    if b is None or not math.isfinite(b) or not len(y):
        return curve
    beyond = float(np.max(y)) > b if curve.higher_is_better else float(np.min(y)) < b
    tol = 1e-9 * max(1.0, abs(b))
    if not beyond or abs((float(np.max(y)) if curve.higher_is_better else float(np.min(y))) - b) <= tol:
        return curve
    caveats.append(
        f"a score lies beyond the metric's perfect score {b:g}: the values are on another scale (e.g. 0-100), "
        "so the perfect score is not used and effects are in the metric's units"
    )
    return dataclasses.replace(curve, best=None)


def _own_axis(curve: Curve, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, cfg: AnalysisConfig) -> _Axis:
    """The metric's own axis, oriented: normalised where it has bounds, else its units (above chance if known)."""
    c, b = curve.chance, curve.best
    fin = lambda v: v is not None and math.isfinite(v)  # noqa: E731
    ref, has_chance = math.nan, False
    if fin(c) and fin(b) and c != b:
        ref, name, has_chance = float(c), "normalised: chance 0, perfect 1", True  # type: ignore[arg-type]
    elif fin(b) and len(y):
        worst = float(np.min(y)) if b >= np.max(y) else float(np.max(y))  # type: ignore[operator]
        if worst != b:
            ref, name = worst, "normalised: worst size 0, perfect 1"
    if math.isnan(ref):
        up = curve.higher_is_better
        u, ul, uh = (y, lo, hi) if up else (-y, -hi, -lo)
        if fin(c):  # no perfect score: metric units, measured from chance
            k = float(c) if up else -float(c)  # type: ignore[arg-type]
            return _Axis("metric units above chance", u - k, ul - k, uh - k, "units", True, cfg.min_effect)
        return _Axis("metric units", u, ul, uh, "units", False, cfg.min_effect)
    scale = float(b) - ref  # type: ignore[arg-type]
    u, a, z = (y - ref) / scale, (lo - ref) / scale, (hi - ref) / scale
    return _Axis(name, u, np.fmin(a, z), np.fmax(a, z), "normalised", has_chance, cfg.min_effect)


def _power_axis(curve: Curve, y, lo, hi, cfg: AnalysisConfig) -> _Axis | str | None:
    """log10 of the metric's loss, oriented (None: no power law declared; a string: why it is unusable)."""
    if curve.metric not in POWER_LAW_AXES or not len(y):
        return None
    name, to_loss = POWER_LAW_AXES[curve.metric]
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = to_loss(y)
        if not np.all(loss > 0):
            return f"{name} needs a positive loss at every size (some are 0): the power-law axis is not shown"
        z = np.log10(loss)
        ends = np.log10(np.clip(np.stack([to_loss(lo), to_loss(hi)]), 0.0, None))  # a 0 bound -> -inf
    zl, zh = np.fmin(ends[0], ends[1]), np.fmax(ends[0], ends[1])
    return _Axis(name, -z, -zh, -zl, "log", False, cfg.min_effect_log10)


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class _Check:
    """One rule's statistic against its threshold; `graded` False for counts (they are never 'close')."""

    name: str
    value: float
    op: str  # ">=" or "<="
    threshold: float
    graded: bool = True

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    @property
    def margin(self) -> float:
        """Signed relative distance to the threshold: > 0 passed, < 0 failed, |.| < cfg.borderline is close."""
        if math.isnan(self.value):
            return -math.inf
        if not self.graded:
            return math.inf if self.passed else -math.inf
        d = self.value - self.threshold if self.op == ">=" else self.threshold - self.value
        return d / (abs(self.threshold) or 1.0)

    def text(self) -> str:
        mark = "\u2713" if self.passed else "\u2717"
        return f"{self.name} {_num(self.value)} (need {self.op} {self.threshold:g}) {mark}"


@dataclass
class _Decision:
    label: str
    reason: str
    confidence: str
    margins: str
    rise: bool
    decline: bool
    z_net: float
    delay: float = math.nan
    floor_level: float = math.nan


class _Stats:
    """Pairwise comparisons on one axis: z from the facing half-widths, and the minimum effect."""

    def __init__(self, ax: _Axis, cfg: AnalysisConfig):
        self.u, self.lo, self.hi, self.eff, self.cfg = ax.u, ax.lo, ax.hi, ax.min_effect, cfg

    def z(self, i: int, j: int) -> float:
        """z of "i above j" (NaN without intervals; +/-inf for exact values)."""
        gap = float(self.u[i] - self.u[j])
        hi_i, hj = float(self.u[i] - self.lo[i]), float(self.hi[j] - self.u[j])
        if math.isnan(hi_i) or math.isnan(hj):
            return math.nan
        rss = math.hypot(max(hi_i, 0.0), max(hj, 0.0))
        if rss == 0:
            return math.copysign(math.inf, gap) if gap else 0.0
        return _Z95 * gap / rss

    def checks(self, i: int, j: int, what: str) -> list[_Check]:
        """Size i reliably above size j: effect, and z where there are intervals."""
        out = [_Check(f"{what} effect", float(self.u[i] - self.u[j]), ">=", self.eff)]
        z = self.z(i, j)
        if not math.isnan(z):
            out.append(_Check(f"{what} z", z, ">=", self.cfg.z))
        return out

    def above(self, i: int, j: int) -> bool:
        return all(c.passed for c in self.checks(i, j, ""))


def _decide(
    x: np.ndarray, ax: _Axis, models: list[str], cfg: AnalysisConfig, caveats: list[str], gate: bool = True
) -> _Decision:
    """The rules of the module docstring on one axis; `gate` False skips rule 1 (to see what it kept out)."""
    u = ax.u
    n = len(u)
    st = _Stats(ax, cfg)
    if n < 2:
        return _Decision(
            "flat", f"{n} size(s): a scaling verdict needs at least 2", "clear", "", False, False, math.nan
        )
    z_net = st.z(n - 1, 0)
    rise, decline = st.above(n - 1, 0), st.above(0, n - 1)
    tried: list[tuple[str, list[_Check]]] = []  # rules that did not fire, with their checks
    groups: list[tuple[str, list[_Check]]] = []  # every rule looked at, for `margins`

    def done(label: str, reason: str, fired: list[_Check], **kw) -> _Decision:
        conf = _confidence(fired, tried, cfg.borderline)
        if label == "emergent" and kw.pop("one_size", False):
            conf = "borderline"
        margins = " | ".join(f"{rule}: " + ", ".join(c.text() for c in cs) for rule, cs in groups)
        return _Decision(label, reason, conf, margins, rise, decline, z_net, **kw)

    best, worst = int(np.argmax(u)), int(np.argmin(u))
    span = float(u[best] - u[worst])
    change = [_Check("span", span, ">=", ax.min_effect)]
    zbw = st.z(best, worst)
    if not math.isnan(zbw):
        change.append(_Check("best-worst z", zbw, ">=", cfg.z))
    if gate:
        groups.append(("change", change))
    if gate and not all(c.passed for c in change):
        # a near miss here matters only if, past it, the label would not be a clear flat anyway
        past = _decide(x, ax, models, cfg, [], gate=False)
        if (past.label, past.confidence) != ("flat", "clear"):
            tried.append(("change", change))
        if span < ax.min_effect:
            floor = ax.has_chance and float(np.max(u)) <= cfg.floor_level
            where = "stays at the floor: " if floor else ""
            return done(
                "flat",
                f"{where}total change {span:.3g} is below the minimum effect {ax.min_effect:g} on the {ax.name} axis",
                [],
            )
        return done(
            "flat",
            f"the best ({_size(x[best])}) and worst ({_size(x[worst])}) sizes do not differ "
            f"reliably (z {_num(zbw)} < {cfg.z:g})",
            [],
        )

    # -- u_shaped: a sustained dip below both ends
    if n >= cfg.min_sizes + 1:
        m = 1 + int(np.argmin(u[1:-1]))
        below = sum(st.above(0, i) and st.above(n - 1, i) for i in range(1, n - 1))
        u_checks = st.checks(0, m, "dip") + st.checks(n - 1, m, "recovery")
        u_checks.append(_Check("dip sizes", float(below), ">=", float(cfg.dip_sizes), graded=False))
        groups.append(("u_shaped", u_checks))
        if all(c.passed for c in u_checks):
            return done(
                "u_shaped",
                (
                    f"worsens reliably from {_size(x[0])} to a minimum at {_size(x[m])} on the {ax.name} axis, "
                    f"then improves reliably to {_size(x[-1])}; {below} interior sizes lie reliably below both ends "
                    "(sustained)"
                ),
                u_checks,
            )
        tried.append(("u_shaped", u_checks))

    # -- inverse: a sustained decline from the first size
    inv = st.checks(0, n - 1, "decline")
    if n >= 3:
        inv.append(_Check("decline sustained", float(st.above(0, n - 2)), ">=", 1.0, graded=False))
    groups.append(("inverse", inv))
    if all(c.passed for c in inv):
        return done(
            "inverse",
            (
                f"the largest size ({_size(x[-1])}) is reliably worse than the smallest ({_size(x[0])}), and so is the "
                f"next largest: change {float(u[-1] - u[0]):+.3g} on the {ax.name} axis"
            ),
            inv,
        )
    tried.append(("inverse", inv))

    # -- inverted U: a reliable rise to an interior peak, then a sustained decline giving back most of it
    if n >= 3:
        pk = 1 + int(np.argmax(u[1:-1]))
        after = sum(st.above(pk, i) for i in range(pk + 1, n))
        gain = float(u[pk] - u[0])
        give_back = float(u[pk] - u[-1]) / gain if gain > 0 else math.nan
        iu = st.checks(pk, 0, "rise to peak") + st.checks(pk, n - 1, "decline after peak")
        iu.append(_Check("sizes below peak", float(after), ">=", float(cfg.dip_sizes), graded=False))
        iu.append(_Check("share of rise given back", give_back, ">=", cfg.inverse_fraction))
        groups.append(("inverted U", iu))
        if all(c.passed for c in iu):
            return done(
                "inverse",
                (
                    f"inverted U: improves to a peak at {_size(x[pk])}, then worsens reliably to {_size(x[-1])}, "
                    f"giving back {give_back:.0%} of the rise (inverse scaling past the peak)"
                ),
                iu,
            )
        tried.append(("inverted U", iu))
        if st.above(pk, n - 1) and float(u[pk] - u[-1]) >= ax.min_effect:
            caveats.append(
                f"worsens reliably after its peak at {_size(x[pk])} ({give_back:.0%} of the rise given back, "
                f"{after} size(s) reliably below the peak): not inverse scaling, which needs "
                f"{cfg.inverse_fraction:.0%} and {cfg.dip_sizes} sizes"
            )
    _outliers(x, st, caveats)

    # -- rising
    rise_checks = st.checks(n - 1, 0, "rise")
    groups.append(("rising", rise_checks))
    if not all(c.passed for c in rise_checks):
        tried.append(("rising", rise_checks))
        return done(
            "flat",
            "the best and worst sizes differ, but the smallest and largest do not: no reliable trend with scale",
            [],
        )

    # -- emergent or smooth
    # measured to the largest size, not to the best one: the best of many noisy sizes is biased upwards
    top = n - 1
    gain = float(u[top] - u[0])
    f = (u - u[0]) / gain
    j = -1
    for i in range(top):
        if f[i] > cfg.floor_fraction:
            break
        j = i
    em: list[_Check] = [
        _Check("sizes", float(n), ">=", float(cfg.min_sizes), graded=False),
        _Check("floor sizes", float(j + 1), ">=", 2.0, graded=False),
    ]
    delay = floor_lvl = math.nan
    if j >= 1:
        delay = trend_lag(x, u, j, reach=1.0 - cfg.floor_fraction)
        floor_lvl = float(np.mean(u[: j + 1]))
        em.append(_Check("delay", delay, ">=", cfg.min_delay))
        if ax.has_chance:
            em.append(_Check("floor level", floor_lvl, "<=", cfg.floor_level))
        if ax.scale != "log":
            em.append(_Check("rise", gain, ">=", cfg.emergent_min_rise))
        em.extend(st.checks(top, j, "jump"))
    groups.append(("emergent", em))
    es = emergence_score(x, u)
    score_txt = f"emergence score {_num(es)} vs n-1 = {n - 1}"
    if all(c.passed for c in em):
        k = j + 1
        gap = float(np.log10(x[j + 1] / x[j]))
        if math.isinf(es):
            caveats.append(
                "the median step is exactly 0 (the score sits at one value for most sizes, e.g. no exact match "
                "in a few hundred examples): resolution, not only the model, sets the sharpness; see the "
                "continuous metrics of the same outputs, or evaluate more examples (Hu et al. 2023, PassUntil)"
            )
        if gap > cfg.coarse_gap_decades:
            caveats.append(
                f"the rise starts across {gap:.2g} decades ({_size(x[j])} to {_size(x[j + 1])}): "
                "with sizes this far apart a gradual sigmoid also looks sudden"
            )
        one = top == n - 1 and j == n - 2
        if one:
            caveats.append(f"the rise rests on the largest size alone ({_size(x[-1])})")
        return done(
            "emergent",
            (
                f"near {'chance' if ax.has_chance else 'its floor'} for the first {k} sizes (up to {_size(x[j])}, "
                f"{delay:.0%} of the rise behind a steady per-decade trend), then improves reliably to "
                f"{_size(x[top])} ({gain:+.3g} on the {ax.name} axis); {score_txt}"
            ),
            em,
            delay=delay,
            floor_level=floor_lvl,
            one_size=one,
        )
    tried.append(("emergent", em))
    short = [c.text() for c in em if not c.passed]
    shape = []
    rho, r2 = _spearman(x, u), _log_fit(x, u)[1]
    if not (math.isfinite(rho) and rho >= cfg.min_monotonicity):
        shape.append(f"not monotone (Spearman rho {_num(rho)})")
    if not (math.isfinite(r2) and r2 >= cfg.smooth_r2):
        shape.append(f"not linear in log-x (R^2 {_num(r2)})")
    head = "improves reliably but " + ", ".join(shape) if shape else "improves reliably and roughly linearly in log-x"
    return done(
        "smooth",
        (f"{head}: {float(u[-1] - u[0]):+.3g} on the {ax.name} axis; not emergent ({'; '.join(short)}); {score_txt}"),
        rise_checks,
        delay=delay,
        floor_level=floor_lvl,
    )


def _confidence(fired: list[_Check], tried: list[tuple[str, list[_Check]]], band: float) -> str:
    """Borderline when the rule that fired passed narrowly, or a rule that did not fire failed narrowly.

    A rule that did not fire would flip the label if all its failed checks
    passed: its distance is the largest shortfall among them (inf for a
    failed count).
    """
    if any(0 <= c.margin < band for c in fired):
        return "borderline"
    for _, checks in tried:
        failed = [c for c in checks if not c.passed]
        if failed and max(-c.margin for c in failed) < band:
            return "borderline"
    return "clear"


def _outliers(x: np.ndarray, st: _Stats, caveats: list[str]) -> None:
    """A caveat for every interior size reliably below both neighbours (a bad model or checkpoint, not a trend)."""
    for i in range(1, len(x) - 1):
        if st.above(i - 1, i) and st.above(i + 1, i):
            caveats.append(
                f"{_size(x[i])} is reliably below both neighbours: one size (a bad model or checkpoint?) does not "
                "make a U-shape"
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
