"""The verdict rules on textbook shapes, with realistic intervals and without; Wilson intervals; the mirage.

Every curve here is built from what it is meant to be (a binomial cell of n
examples, p^L of a per-token accuracy), not typed-in verdict inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.mirage import mirage_table, summary
from orchestrator.analysis.verdicts import judge, judge_all, transition_index, verdict_table
from orchestrator.metrics import MetricContext
from orchestrator.metrics.aggregate import is_binary, mean_interval, summarise, wilson_interval

N = 200  # examples per cell: a typical BIG-bench task
FIVE = tuple(float(v) for v in np.logspace(8, 12, 5))  # 100M ... 1T, a decade apart
NAN5 = (math.nan,) * 5


def em_curve(y, *, n=N, x=FIVE, chance=0.0, best=1.0, metric="exact_match", task="t") -> Curve:
    """Exact-match-like curve: each point k/n correct, with its Wilson interval (n=0: no intervals)."""
    k = [round(v * n) for v in y] if n else None
    ys = tuple(kk / n for kk in k) if n else tuple(float(v) for v in y)
    iv = [wilson_interval(kk, n) for kk in k] if n else [(math.nan, math.nan)] * len(y)
    return Curve(
        task=task,
        prompt="zero_shot",
        metric=metric,
        x=tuple(x),
        y=ys,
        lo=tuple(a for a, _ in iv),
        hi=tuple(b for _, b in iv),
        models=tuple(f"m{i}" for i in range(len(y))),
        chance=chance,
        best=best,
        kind="discontinuous",
    )


# --------------------------------------------------------------------------- intervals of binary scores


def test_wilson_interval_at_0_of_n_and_n_of_n_is_not_a_point():
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 200) == (0.0, pytest.approx(z2 / (200 + z2)))  # [0, 0.0188], not [0, 0]
    assert wilson_interval(200, 200) == (pytest.approx(200 / (200 + z2)), 1.0)
    lo, hi = wilson_interval(0, 10)
    assert hi == pytest.approx(0.2775, abs=1e-4)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17:857,
    # Table II, method 3 (Wilson score interval, no continuity correction)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_published_values(k, n, lo, hi):
    assert wilson_interval(k, n) == (pytest.approx(lo, abs=1e-4), pytest.approx(hi, abs=1e-4))


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="successes=5"):
        wilson_interval(5, 3)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_binary_cells_get_the_wilson_interval_and_others_the_bootstrap():
    zeros = np.zeros(300)
    mean, lo, hi, how = mean_interval(zeros)
    assert (mean, lo, how) == (0.0, 0.0, "wilson") and hi > 0.01  # the bootstrap said [0, 0] here
    assert mean_interval(np.ones(50))[1] < 1.0
    assert mean_interval([0.0, 1.0, math.nan])[3] == "wilson"  # NaN (unscorable) is ignored
    assert mean_interval([0.0, 0.5, 1.0])[3] == "bootstrap"
    assert is_binary(np.array([0.0, 1.0])) and not is_binary(np.array([])) and not is_binary(np.array([2.0]))


def test_summarise_gives_an_exact_match_cell_with_no_correct_answer_a_real_upper_bound():
    records = [
        {"example_id": i, "generated": "x", "answer": "x", "targets": ["7"], "input": "3+4="} for i in range(100)
    ]
    em = summarise(["exact_match"], records, MetricContext())["exact_match"]
    assert em.n == 100 and em.mean == 0.0
    assert em.interval == "wilson" and em.hi == pytest.approx(wilson_interval(0, 100)[1])


def test_subset_accuracy_gets_the_wilson_interval_over_its_groups():
    records = [{"example_id": i, "generated": "x", "answer": "x", "targets": ["7"], "input": "3+4="} for i in range(40)]
    sa = summarise(["subset_accuracy"], records, MetricContext(subset_k=4))["subset_accuracy"]
    assert (sa.mean, sa.n, sa.unit, sa.interval) == (0.0, 10, "group", "wilson")
    assert sa.hi == pytest.approx(wilson_interval(0, 10)[1])  # 0 of 10 groups: [0, 0.28], not [0, 0]


def test_a_cell_at_0_of_n_is_not_reliably_above_anything():
    # 0/200, 0/200, then 1/200: the Wilson lower bound of 1/200 is above chance 0, of 0/200 it is not
    c = em_curve([0.0, 0.0, 0.005, 0.3, 0.8])
    assert transition_index(c) == 2
    assert wilson_interval(1, 200)[0] > 0.0


# --------------------------------------------------------------------------- textbook shapes


@pytest.mark.parametrize("n", [N, 0], ids=["wilson-n200", "no-intervals"])
def test_the_textbook_emergent_shape_is_emergent(n):
    v = judge(em_curve([0, 0, 0.01, 0.4, 0.8], n=n))
    assert v.label == "emergent" and v.confidence == "clear", v.margins
    assert "first 3 sizes" in v.reason
    assert v.delay == pytest.approx(0.5 - 0.01 / 0.8, abs=0.01)  # 2 of 4 decades gone, 1% of the rise made


@pytest.mark.parametrize("n", [N, 0], ids=["wilson-n200", "no-intervals"])
def test_the_four_size_textbook_shape_is_emergent(n):
    v = judge(em_curve([0, 0.01, 0.4, 0.8], n=n, x=FIVE[1:]))
    assert v.label == "emergent", v.margins
    assert v.n_sizes == 4


def test_a_lower_flatter_curve_is_no_more_emergent_than_the_textbook_one():
    # the old rule called [0, 0, .01, .4, .8] smooth and this one emergent
    textbook = judge(em_curve([0, 0, 0.01, 0.4, 0.8]))
    lower = judge(em_curve([0, 0, 0.01, 0.1, 0.25]))
    assert textbook.label == "emergent" and lower.label == "emergent"
    assert textbook.effect_size > lower.effect_size


@pytest.mark.parametrize("n", [N, 1000, 0], ids=["wilson-n200", "wilson-n1000", "no-intervals"])
def test_a_rise_at_the_floor_is_not_emergence(n):
    v = judge(em_curve([0, 0, 0, 0.01, 0.04], n=n))
    assert v.label == "flat", v.margins
    assert "stays at the floor" in v.reason
    # close to the minimum effect (4% vs 5% of the range): the verdict says it is a near call
    assert v.confidence == "borderline"


def test_a_larger_rise_still_near_the_floor_is_smooth_not_emergent():
    v = judge(em_curve([0.0, 0.0, 0.0, 0.02, 0.07], n=5000))
    assert v.label == "smooth"
    assert "rise 0.07 (need >= 0.1)" in v.reason


@pytest.mark.parametrize("n", [N, 0], ids=["wilson-n200", "no-intervals"])
def test_an_evenly_rising_line_is_smooth(n):
    v = judge(em_curve([0.1, 0.3, 0.5, 0.7, 0.9], n=n))
    assert v.label == "smooth" and v.confidence == "clear"
    assert v.emergence_ratio == pytest.approx(1.0) and v.log_fit_r2 == pytest.approx(1.0)


@pytest.mark.parametrize("n", [N, 0], ids=["wilson-n200", "no-intervals"])
def test_one_bad_checkpoint_is_not_a_u_shape(n):
    v = judge(em_curve([0.3, 0.35, 0.1, 0.45, 0.5], n=n))
    assert v.label == "smooth", v.margins
    assert any("below both neighbours" in c for c in v.caveats)
    assert "dip sizes 1 (need >= 2)" in v.margins


@pytest.mark.parametrize("n", [N, 0], ids=["wilson-n200", "no-intervals"])
def test_a_genuine_u_shape_is_still_detected(n):
    v = judge(em_curve([0.5, 0.3, 0.1, 0.3, 0.5], n=n))
    assert v.label == "u_shaped" and "3 interior sizes" in v.reason


@pytest.mark.parametrize("n", [N, 0], ids=["wilson-n200", "no-intervals"])
def test_a_peak_then_a_slight_dip_is_not_inverse(n):
    v = judge(em_curve([0.0, 0.0, 0.02, 0.75, 0.72], n=n))
    assert v.label == "emergent", v.margins
    assert "share of rise given back" in v.margins


@pytest.mark.parametrize("n", [N, 0], ids=["wilson-n200", "no-intervals"])
def test_genuine_inverse_scaling_is_still_detected(n):
    assert judge(em_curve([0.8, 0.6, 0.4, 0.3, 0.2], n=n)).label == "inverse"
    inverted_u = judge(em_curve([0.2, 0.5, 0.8, 0.5, 0.2], n=n))
    assert inverted_u.label == "inverse" and "inverted U" in inverted_u.reason


def test_a_decline_at_the_largest_size_alone_is_not_inverse():
    v = judge(em_curve([0.8, 0.8, 0.8, 0.8, 0.2]))
    assert v.label != "inverse"
    assert "decline sustained 0 (need >= 1)" in v.margins


def test_a_jump_across_a_wide_gap_in_x_is_not_called_sharp():
    """The same scores: emergent on an even grid, not when the floor spans a fifth of a decade of four."""
    y = [0.0, 0.0, 0.0, 0.8]
    even = judge(em_curve(y, x=FIVE[:4]))
    bunched = judge(em_curve(y, x=(1e8, 1.26e8, 1.58e8, 1e12)))
    assert even.label == "emergent"
    assert bunched.label == "smooth" and bunched.delay < 0.25


def test_every_verdict_states_its_confidence_and_the_margin_to_each_rule():
    vs = judge_all([em_curve([0, 0, 0.01, 0.4, 0.8]), em_curve([0, 0, 0, 0.01, 0.04])])
    df = verdict_table(vs)
    assert list(df["confidence"]) == ["clear", "borderline"]
    m = df.loc[0, "margins"]
    for rule in ("change:", "u_shaped:", "inverse:", "inverted U:", "rising:", "emergent:"):
        assert rule in m
    assert "delay 0.487 (need >= 0.25) \u2713" in m


def test_a_near_miss_is_borderline_only_where_it_could_change_the_label():
    def c(y):
        return Curve(
            "t",
            "p",
            "m",
            FIVE,
            tuple(y),
            tuple(v - 0.055 for v in y),
            tuple(v + 0.055 for v in y),
            tuple("abcde"),
            chance=0.0,
            best=1.0,
            kind="discontinuous",
        )

    # noise: the extremes nearly differ (z 1.76), but nothing past that test would make it anything but flat
    noise = judge(c([0.30, 0.34, 0.27, 0.33, 0.29]))
    assert (noise.label, noise.confidence) == ("flat", "clear"), noise.margins
    # the same near miss between the first and the last size: it could have been a rise
    late = judge(c([0.30, 0.30, 0.30, 0.30, 0.37]))
    assert (late.label, late.confidence) == ("flat", "borderline"), late.margins


# --------------------------------------------------------------------------- continuous metrics


def distance_curve(y, *, w=0.05, metric="token_edit_distance") -> Curve:
    return Curve(
        task="t",
        prompt="zero_shot",
        metric=metric,
        x=FIVE,
        y=tuple(y),
        lo=tuple(v - w for v in y),
        hi=tuple(v + w for v in y),
        models=tuple(f"m{i}" for i in range(len(y))),
        best=0.0,
        higher_is_better=False,
        kind="continuous",
    )


def test_a_distance_approaching_zero_is_not_emergent_because_its_log_collapses():
    # an even fall to near-perfection: smooth on the metric's own axis; log10(distance) plunges at the end
    v = judge(distance_curve([4.0, 3.0, 2.0, 1.0, 0.02], w=0.01))
    assert v.label == "smooth" and v.axis == "normalised: worst size 0, perfect 1"
    assert (v.alt_axis, v.alt_label) == ("log10(distance)", "emergent")  # shown, not deciding


# --------------------------------------------------------------------------- the Schaeffer construction


def schaeffer_curves(n: int = 500, L: int = 10, seed: int = 0) -> list[Curve]:
    """Schaeffer, Miranda & Koyejo (2023) sec. 2: per-token accuracy p rises evenly with log N; an answer of
    L tokens is exactly right with probability p^L; its token edit distance (substitutions) is the number of
    wrong tokens, mean L (1 - p). Simulated per example, scored into cells with the project's intervals."""
    rng = np.random.default_rng(seed)
    x = tuple(float(v) for v in np.logspace(8, 11, 4))
    p = 0.4 + 0.185 * np.arange(4)  # 0.4, 0.585, 0.77, 0.955: a straight line in log10 N
    cells = {"exact_match": [], "token_edit_distance": []}
    for pi in p:
        right = rng.random((n, L)) < pi  # token-level correctness of n answers
        cells["exact_match"].append(mean_interval(right.all(axis=1).astype(float)))
        cells["token_edit_distance"].append(mean_interval((~right).sum(axis=1).astype(float), seed=seed))
    spec = {"exact_match": ("discontinuous", True, 1.0, 0.0), "token_edit_distance": ("continuous", False, 0.0, None)}
    out = []
    for metric, pts in cells.items():
        kind, up, best, chance = spec[metric]
        out.append(
            Curve(
                task="add",
                prompt="zero_shot",
                metric=metric,
                x=x,
                y=tuple(c[0] for c in pts),
                lo=tuple(c[1] for c in pts),
                hi=tuple(c[2] for c in pts),
                models=tuple(f"m{i}" for i in range(4)),
                chance=chance,
                best=best,
                higher_is_better=up,
                kind=kind,
            )
        )
    return out


def test_the_schaeffer_construction_is_flagged_as_a_mirage():
    curves = schaeffer_curves()
    em, ted = curves
    assert em.y[0] < 0.005 and 0.05 < em.y[2] < 0.15 and 0.55 < em.y[3] < 0.7  # ~ [0, .006, .09, .63]
    assert np.diff(ted.y) == pytest.approx([-1.85] * 3, abs=0.25)  # falls evenly
    verdicts = judge_all(curves)
    by = {v.metric: v for v in verdicts}
    assert by["exact_match"].label == "emergent", by["exact_match"].margins
    assert by["token_edit_distance"].label == "smooth", by["token_edit_distance"].margins
    table = mirage_table(curves, verdicts)
    row = table.iloc[0]
    assert bool(row["mirage"]) and bool(row["counted"]) and row["continuous_metric"] == "token_edit_distance"
    assert "1 have a declared partner" in summary(table, verdicts) and "1 (100%)" in summary(table, verdicts)


def test_the_headline_counts_only_the_declared_partner():
    em, ted = schaeffer_curves()
    # an undeclared partial-credit score that is smooth does not make a mirage ...
    bleu = Curve(
        task="add",
        prompt="zero_shot",
        metric="bleu",
        x=em.x,
        y=(0.1, 0.3, 0.5, 0.7),
        lo=(0.09, 0.29, 0.49, 0.69),
        hi=(0.11, 0.31, 0.51, 0.71),
        models=em.models,
        kind="continuous",
        best=1.0,
    )
    # ... when the declared partner is itself emergent
    jumpy = Curve(**{**ted.__dict__, "y": (6.0, 6.0, 6.0, 0.5), "lo": (5.9, 5.9, 5.9, 0.4), "hi": (6.1, 6.1, 6.1, 0.6)})
    curves = [em, jumpy, bleu]
    verdicts = judge_all(curves)
    table = mirage_table(curves, verdicts).set_index("continuous_metric")
    assert table.loc["bleu", "continuous_label"] == "smooth" and not bool(table.loc["bleu", "declared"])
    assert not table["mirage"].any()
    assert "not a declared partner" in table.loc["bleu", "flag"]
    assert "and 0 (0%) of those" in summary(table.reset_index(), verdicts)
    # with only an undeclared metric beside it, the emergent curve cannot be checked
    alone = [em, bleu]
    vs = judge_all(alone)
    assert "1 cannot be checked" in summary(mirage_table(alone, vs), vs)
    assert "none has a declared partner" in summary(mirage_table(alone, vs), vs)  # not "0 of those ... a mirage"


def test_a_user_can_declare_a_partner_before_looking():
    em, ted = schaeffer_curves()
    acc = Curve(**{**em.__dict__, "metric": "acc"})  # a published table's name for exact match
    lp = Curve(**{**ted.__dict__, "metric": "my_logprob"})
    verdicts = judge_all([acc, lp])
    assert mirage_table([acc, lp], verdicts)["declared"].tolist() == [False]  # shown, not counted
    table = mirage_table([acc, lp], verdicts, partners={"acc": ["my_logprob"]})
    assert table["counted"].tolist() == [True] and table["mirage"].tolist() == [True]


def test_analysis_config_refuses_thresholds_outside_their_meaning():
    from orchestrator.config import AnalysisConfig, ConfigError

    with pytest.raises(ConfigError, match=r"analysis.min_delay=1.5 .*e.g. analysis.min_delay=0.25"):
        AnalysisConfig(min_delay=1.5)
    with pytest.raises(ConfigError, match="analysis.continuous_axis='log'"):
        AnalysisConfig(continuous_axis="log")


def test_judge_refuses_a_bad_threshold_with_its_name_and_a_valid_value(capsys):
    from pathlib import Path

    from orchestrator.cli import main

    lit = Path(__file__).parent / "fixtures" / "literature"
    code = main(["judge", str(lit / "pythia_arithmetic"), "--params", str(lit / "pythia_params.csv"), "analysis.z=-1"])
    assert code == 2
    assert "analysis.z=-1.0 is outside its meaning" in capsys.readouterr().err


# --------------------------------------------------------------------------- review findings: sharpness, scale, chance


def test_an_early_sharp_jump_is_emergent_and_plateau_sizes_above_a_rise_do_not_change_its_verdict():
    # 0 -> 0.8 within an eighth of a decade, then a plateau: the delay is read over the rise, not over the plateau
    early = judge(em_curve([0, 0, 0.8, 0.85, 0.9], n=500, x=(1e8, 1.5e8, 2e8, 1e10, 1e11)))
    assert early.label == "emergent", early.reason
    textbook = em_curve([0, 0, 0.01, 0.4, 0.8], x=FIVE)
    extended = em_curve([0, 0, 0.01, 0.4, 0.8, 0.85, 0.88, 0.9], x=(*FIVE, 1e13, 1e14, 1e15))
    a, b = judge(textbook), judge(extended)
    assert a.label == b.label == "emergent", (a.reason, b.reason)
    assert b.delay == pytest.approx(a.delay, abs=0.05)  # the same step region, the same delay


def test_a_jump_across_a_gap_much_wider_than_its_floor_stays_smooth():
    # the floor spans a fifth of a decade, the rise crosses four: a gradual sigmoid would look the same
    v = judge(em_curve([0, 0, 0, 0.8], n=500, x=(1e8, 1.26e8, 1.58e8, 1e12)))
    assert v.label == "smooth", v.reason


def test_scores_beyond_the_declared_perfect_score_are_read_in_their_units_not_upside_down():
    f1 = Curve(task="squad", prompt="0-shot", metric="f1", x=FIVE, y=(20.0, 30.0, 40.0, 50.0, 60.0), lo=NAN5,
               hi=NAN5, models=tuple("abcde"), chance=None, best=1.0, kind="continuous")
    v = judge(f1)
    assert v.label == "smooth" and any("beyond the metric's perfect score" in c for c in v.caveats), v


def test_emergent_without_a_chance_score_is_borderline_and_says_why():
    known = judge(em_curve([0.60, 0.61, 0.62, 0.85, 0.95], n=5000, chance=0.25))
    unknown = judge(em_curve([0.60, 0.61, 0.62, 0.85, 0.95], n=5000, chance=None))
    assert known.label != "emergent"  # 0.6 is far above a chance of 0.25: not a floor near chance
    if unknown.label == "emergent":
        assert unknown.confidence == "borderline"
        assert any("no chance score" in c for c in unknown.caveats)
    zero = judge(em_curve([0, 0, 0.01, 0.4, 0.8], chance=0.0))
    assert zero.label == "emergent" and not any("no chance score" in c for c in zero.caveats)
