"""Verdicts, transition scales, the mirage table and the prompt comparison on hand-built curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.analysis.compare import compare_prompts
from orchestrator.analysis.curves import Curve
from orchestrator.analysis.mirage import counterparts, mirage_table, summary, undeclared
from orchestrator.analysis.verdicts import (
    LABELS,
    Verdict,
    judge,
    judge_all,
    transition_index,
    transition_scale,
    verdict_table,
)
from orchestrator.config import AnalysisConfig

SIZES = tuple(float(v) for v in np.logspace(6, 10, 5))  # 1M ... 10B, a decade apart


def curve(
    y,
    *,
    w=0.02,
    metric="exact_match",
    kind="discontinuous",
    higher_is_better=True,
    chance=None,
    x=SIZES,
    task="t",
    prompt="zero_shot",
    lo=None,
    hi=None,
    best=None,
) -> Curve:
    """A curve with a symmetric interval of half-width `w` unless lo/hi are given."""
    y = tuple(float(v) for v in y)
    return Curve(
        task=task,
        prompt=prompt,
        metric=metric,
        x=tuple(x),
        y=y,
        lo=tuple(lo) if lo is not None else tuple(v - w for v in y),
        hi=tuple(hi) if hi is not None else tuple(v + w for v in y),
        models=tuple(f"m{i}" for i in range(len(y))),
        chance=chance,
        higher_is_better=higher_is_better,
        kind=kind,
        best=best,
    )


# --------------------------------------------------------------------------- labels


def test_step_function_is_emergent_with_an_infinite_score():
    v = judge(curve([0, 0, 0, 0, 0.8]))
    assert v.label == "emergent"
    assert v.emergence_score == math.inf
    assert v.baseline == 4
    assert v.rise_outside_interval
    assert v.transition_scale == 1e10 and v.transition_model == "m4"
    assert "inf" in v.reason
    # the jump spans a full decade: the verdict says a coarse grid can make a sigmoid look sudden
    assert any("decades" in c for c in v.caveats)


def test_straight_line_in_log_x_is_smooth_and_scores_the_n_minus_one_baseline():
    v = judge(curve([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert v.label == "smooth"
    assert v.emergence_score == pytest.approx(4.0)
    assert v.emergence_ratio == pytest.approx(1.0)
    assert v.log_fit_r2 == pytest.approx(1.0)
    assert v.log_fit_slope == pytest.approx(0.1)  # per decade
    assert v.monotonicity == pytest.approx(1.0)
    assert v.decades_per_step == pytest.approx(1.0)


def test_u_shape():
    v = judge(curve([0.5, 0.3, 0.1, 0.3, 0.5]))
    assert v.label == "u_shaped"
    assert "minimum at 100M" in v.reason


def test_u_shape_needs_both_changes_outside_the_intervals():
    # the dip is inside the first point's interval: no reliable decline, so not a U
    v = judge(curve([0.5, 0.45, 0.42, 0.7, 0.9], lo=[0.3, 0.4, 0.37, 0.65, 0.85], hi=[0.7, 0.5, 0.47, 0.75, 0.95]))
    assert v.label != "u_shaped"


def test_flat_noisy_series_with_wide_intervals():
    v = judge(curve([0.30, 0.34, 0.27, 0.33, 0.29], w=0.1))
    assert v.label == "flat"
    assert "do not differ reliably" in v.reason
    assert v.transition_scale is None


def test_tiny_but_significant_change_is_flat_below_the_minimum_effect():
    v = judge(curve([0.300, 0.302, 0.304, 0.306, 0.310], w=0.0001))
    assert v.label == "flat"
    assert "minimum effect" in v.reason


def test_inverse_scaling():
    v = judge(curve([0.8, 0.6, 0.4, 0.3, 0.2]))
    assert v.label == "inverse"
    assert v.decline_outside_interval and not v.rise_outside_interval
    assert v.net_change == pytest.approx(-0.6)


def test_inverted_u_is_inverse_scaling_past_a_peak():
    v = judge(curve([0.2, 0.5, 0.8, 0.5, 0.2]))
    assert v.label == "inverse"
    assert "inverted U" in v.reason


def test_lower_is_better_metric_is_flipped_before_judging():
    falling = curve([4.0, 3.0, 2.2, 1.6, 1.1], w=0.1, metric="brier_score", kind="continuous", higher_is_better=False)
    rising = curve([1.1, 1.6, 2.2, 3.0, 4.0], w=0.1, metric="brier_score", kind="continuous", higher_is_better=False)
    assert judge(falling).label == "smooth"
    assert judge(falling).log_fit_slope > 0  # improvement per decade is positive
    assert judge(rising).label == "inverse"


def test_edit_distance_is_judged_on_its_own_axis_and_shown_on_the_power_law_axis():
    y = [12.0 * n**-0.25 for n in SIZES]  # L(N) = c N^-a, the cross-entropy law
    c = curve(y, w=0.0, metric="token_edit_distance", kind="continuous", higher_is_better=False, best=0.0)
    own = judge(c)  # default: the metric's own axis, normalised worst size 0 .. perfect (distance 0) 1
    assert own.axis == "normalised: worst size 0, perfect 1" and own.label == "smooth"
    assert (own.alt_axis, own.alt_label) == ("log10(distance)", "smooth")
    v = judge(c, AnalysisConfig(continuous_axis="power_law"))
    assert v.axis == "log10(distance)" and v.alt_axis.startswith("normalised")
    assert v.label == "smooth"
    assert v.emergence_score == pytest.approx(4.0)  # a straight line on the judged axis
    assert v.log_fit_r2 == pytest.approx(1.0)
    assert v.log_fit_slope == pytest.approx(0.25)  # decades of distance saved per decade of params
    assert own.log_fit_r2 < 0.99  # curved on the linear axis


def test_target_logprob_and_probabilities_use_their_power_law_axes():
    pl = AnalysisConfig(continuous_axis="power_law")
    lp = judge(curve([-8.0, -4.0, -2.0, -1.0, -0.5], w=0.1, metric="target_logprob", kind="continuous"), pl)
    assert lp.axis == "log10(-log p)" and lp.label == "smooth"
    assert lp.emergence_score == pytest.approx(4.0)
    p = [math.exp(-2.0 * n**-0.1 * 10**0.6) for n in SIZES]  # -ln p a power law in N
    tp = judge(curve(p, w=0.0, metric="target_token_prob", kind="continuous"), pl)
    assert tp.axis == "log10(-ln p)"
    assert tp.emergence_score == pytest.approx(4.0)


def test_a_zero_loss_falls_back_to_the_own_axis_with_a_caveat():
    v = judge(
        curve([3.0, 2.0, 1.0, 0.5, 0.0], w=0.1, metric="char_edit_distance", kind="continuous", higher_is_better=False),
        AnalysisConfig(continuous_axis="power_law"),
    )
    assert v.axis == "metric units" and v.alt_axis == ""
    assert any("positive loss" in c for c in v.caveats)
    assert v.label == "smooth"


def test_without_intervals_the_minimum_effect_decides_and_a_caveat_says_so():
    nan = [math.nan] * 5
    v = judge(curve([0, 0, 0, 0, 0.5], lo=nan, hi=nan))
    assert v.label == "emergent"
    assert any("no bootstrap intervals" in c for c in v.caveats)
    assert judge(curve([0, 0, 0, 0, 0.01], lo=nan, hi=nan)).label == "flat"


def test_two_sizes_can_rise_but_cannot_be_called_emergent():
    v = judge(curve([0.0, 0.9], x=(1e8, 1e9)))
    assert v.label == "smooth"
    assert "sizes 2 (need >= 3)" in v.reason
    assert judge(curve([0.5], x=(1e8,))).label == "flat"


def test_the_emergence_score_is_reported_against_n_minus_one_but_does_not_decide():
    # the old rule (score >= 2 (n - 1), or one step >= 60% of the change) called this textbook shape smooth
    v = judge(curve([0.0, 0.0, 0.01, 0.4, 0.8], w=0.01))
    assert v.emergence_score == pytest.approx(0.8 / math.sqrt(np.median(np.diff([0, 0, 0.01, 0.4, 0.8]) ** 2)))
    assert v.emergence_ratio < 2 and v.label == "emergent"
    even = judge(curve([0.0, 0.2, 0.4, 0.6, 0.8], w=0.01))  # 25% per step
    assert even.label == "smooth" and even.emergence_ratio == pytest.approx(1.0)


def test_a_curve_already_rising_at_the_first_sizes_is_not_emergent():
    # a big final jump, but the first sizes already climb: not "near baseline, then a sharp rise"
    v = judge(curve([0.0, 0.2, 0.2, 0.2, 0.2, 0.9], w=0.01, x=tuple(float(v) for v in np.logspace(6, 11, 6))))
    assert v.emergence_score == math.inf
    assert v.label == "smooth"
    assert "floor sizes 1 (need >= 2)" in v.reason  # only the first size is near its floor


def test_nan_points_are_dropped_and_unsorted_input_is_sorted():
    c = curve([0.5, 0.1, math.nan, 0.3, 0.2], x=(1e10, 1e6, 1e8, 1e9, 1e7))
    v = judge(c)
    assert v.n_sizes == 4
    assert v.label == "smooth"


def test_labels_are_the_documented_ones():
    ys = ([0, 0, 0, 0, 0.8], [0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.3, 0.1, 0.3, 0.5], [0.3, 0.3, 0.3, 0.3, 0.3])
    assert {judge(curve(y)).label for y in ys} <= set(LABELS)


# --------------------------------------------------------------------------- transition scale


def test_transition_uses_chance_and_must_be_sustained():
    # MC grade with chance .25: a lucky blip at 10M, then reliably above chance from 1B on
    c = curve([0.25, 0.31, 0.24, 0.40, 0.70], metric="multiple_choice_grade", chance=0.25)
    assert transition_index(c) == 3
    assert transition_scale(c) == 1e9


def test_transition_without_chance_uses_the_first_sizes_upper_bound():
    c = curve([0.0, 0.01, 0.03, 0.30, 0.80], w=0.02)
    assert transition_scale(c) == 1e9  # .30 - .02 > 0 + .02; .03 - .02 is not


def test_transition_of_a_lower_is_better_metric():
    c = curve(
        [0.19, 0.19, 0.185, 0.15, 0.10],
        w=0.005,
        metric="brier_score",
        kind="continuous",
        higher_is_better=False,
        chance=0.1875,
    )
    assert transition_scale(c) == 1e9  # hi .155 < chance; at 100M hi .19 is not


def test_no_transition_for_a_curve_that_never_leaves_baseline():
    assert transition_scale(curve([0.25, 0.25, 0.26, 0.25, 0.25], chance=0.25)) is None


def test_a_model_already_above_chance_at_the_smallest_size_transitions_there():
    assert transition_scale(curve([0.6, 0.7, 0.8, 0.85, 0.9], chance=0.25)) == 1e6


# --------------------------------------------------------------------------- table


def test_verdict_table_has_one_row_per_curve_and_every_field():
    vs = judge_all([curve([0, 0, 0, 0, 0.8]), curve([0.1, 0.2, 0.3, 0.4, 0.5], metric="char_edit_distance")])
    df = verdict_table(vs)
    assert len(df) == 2
    assert list(df.columns) == list(Verdict.__dataclass_fields__)
    assert df.loc[0, "label"] == "emergent"
    assert isinstance(df.loc[0, "caveats"], str)


# --------------------------------------------------------------------------- mirage table


def _pair(disc_y, cont_y, *, disc="exact_match", cont="token_edit_distance", prompt="zero_shot", task="add"):
    return [
        curve(disc_y, metric=disc, task=task, prompt=prompt),
        curve(cont_y, w=0.05, metric=cont, kind="continuous", higher_is_better=False, task=task, prompt=prompt),
    ]


def test_mirage_flags_emergent_exact_match_with_smooth_edit_distance():
    curves = _pair([0, 0, 0, 0.01, 0.6], [4.0, 3.0, 2.2, 1.6, 1.1])
    table = mirage_table(curves, judge_all(curves))
    assert len(table) == 1
    row = table.iloc[0]
    assert row["emergent_under"] == "discontinuous"
    assert row["discontinuous_label"] == "emergent" and row["continuous_label"] == "smooth"
    assert bool(row["mirage"]) is True
    assert row["flag"] == (
        "emergent under exact_match, smooth under token_edit_distance (smooth on its log10(distance) axis)"
    )
    assert row["declared"] and row["counted"]
    assert (row["continuous_axis"], row["continuous_alt_axis"]) == ("metric units", "log10(distance)")
    assert "1 (100%)" in summary(table)


def test_mirage_is_false_when_the_continuous_metric_is_emergent_too():
    curves = _pair([0, 0, 0, 0, 0.6], [4.0, 4.0, 4.0, 4.0, 1.0])
    row = mirage_table(curves, judge_all(curves)).iloc[0]
    assert row["continuous_label"] == "emergent"
    assert bool(row["mirage"]) is False
    assert row["flag"].startswith("emergent under exact_match, emergent under token_edit_distance")


def test_the_converse_emergent_under_a_continuous_metric_only():
    curves = _pair([0.1, 0.2, 0.3, 0.4, 0.5], [4.0, 4.0, 4.0, 4.0, 1.0])
    table = mirage_table(curves, judge_all(curves))
    row = table.iloc[0]
    assert row["emergent_under"] == "continuous"
    assert row["flag"].startswith("emergent under token_edit_distance, smooth under exact_match")
    assert bool(row["mirage"]) is False


def test_no_row_when_nothing_is_emergent_and_the_columns_survive():
    curves = _pair([0.1, 0.2, 0.3, 0.4, 0.5], [4.0, 3.0, 2.2, 1.6, 1.1])
    table = mirage_table(curves, judge_all(curves))
    assert table.empty and "flag" in table.columns
    assert summary(table).startswith("No curve")


def test_mc_grade_is_paired_with_brier_not_with_edit_distance():
    assert counterparts("multiple_choice_grade", ["brier_score", "token_edit_distance", "correct_option_prob"]) == [
        "brier_score",
        "correct_option_prob",
    ]
    assert counterparts("exact_match", ["brier_score", "target_logprob"]) == ["target_logprob"]
    assert counterparts("exact_str_match", ["char_edit_distance", "token_edit_distance"]) == [
        "token_edit_distance",
        "char_edit_distance",
    ]
    assert counterparts("my_metric", ["calibration_ece", "brier_score"]) == []  # undeclared: no partner
    # a continuous metric this project does not declare (a user's, a published table's) is shown, never counted
    assert undeclared("exact_match", ["partial_credit", "correct_option_prob", "calibration_ece", "bleu"]) == [
        "partial_credit",
        "bleu",
    ]
    curves = [
        curve([0.25, 0.25, 0.25, 0.25, 0.7], metric="multiple_choice_grade", chance=0.25, task="mc"),
        curve(
            [0.19, 0.18, 0.17, 0.16, 0.12],
            w=0.005,
            metric="brier_score",
            kind="continuous",
            higher_is_better=False,
            task="mc",
        ),
        curve(
            [4.0, 3.0, 2.2, 1.6, 1.1],
            w=0.05,
            metric="token_edit_distance",
            kind="continuous",
            higher_is_better=False,
            task="mc",
        ),
    ]
    table = mirage_table(curves, judge_all(curves))
    assert list(table["continuous_metric"]) == ["brier_score"]
    assert bool(table.iloc[0]["mirage"])


def test_mirage_rows_stay_within_a_task_and_prompt():
    curves = _pair([0, 0, 0, 0, 0.6], [4.0, 3.0, 2.2, 1.6, 1.1], prompt="zero_shot") + _pair(
        [0.1, 0.2, 0.3, 0.4, 0.5], [4.0, 3.0, 2.2, 1.6, 1.1], prompt="cot"
    )
    table = mirage_table(curves, judge_all(curves))
    assert list(table["prompt"]) == ["zero_shot"]


# --------------------------------------------------------------------------- prompt comparison


def test_chain_of_thought_moves_the_transition_earlier():
    curves = [
        curve([0, 0, 0, 0.02, 0.6], prompt="zero_shot"),
        curve([0, 0, 0.3, 0.5, 0.8], prompt="chain_of_thought"),
    ]
    df = compare_prompts(curves, judge_all(curves))
    cot = df[df.prompt == "chain_of_thought"].iloc[0]
    zs = df[df.prompt == "zero_shot"].iloc[0]
    assert zs["direction"] == "reference" and zs["transition_scale"] == 1e10
    assert cot["reference_prompt"] == "zero_shot"
    assert cot["transition_scale"] == 1e8
    assert cot["shift_decades"] == pytest.approx(-2.0)
    assert cot["shift_steps"] == -2
    assert cot["direction"] == "earlier"
    assert zs["label"] == "emergent" and set(df["confidence"]) <= {"clear", "borderline"}


def test_compare_reference_choice_and_one_sided_transitions():
    curves = [
        curve([0, 0, 0, 0, 0], prompt="a", w=0.01),
        curve([0, 0, 0, 0.5, 0.8], prompt="b"),
        curve([0, 0, 0, 0, 0.9], prompt="c"),
    ]
    df = compare_prompts(curves)  # no zero_shot: the first style alphabetically is the reference
    by = {r.prompt: r for r in df.itertuples()}
    assert by["a"].direction == "reference"
    assert by["b"].direction == "only_this" and math.isnan(by["b"].shift_decades)
    df = compare_prompts(curves, reference="c")
    by = {r.prompt: r for r in df.itertuples()}
    assert by["b"].direction == "earlier" and by["b"].shift_steps == -1
    assert by["a"].direction == "only_reference"
    assert set(df["label"]) == {""} and set(df["confidence"]) == {""}  # no verdicts given


def test_same_size_step_is_reported_as_same():
    curves = [curve([0, 0, 0, 0.5, 0.6], prompt="zero_shot"), curve([0, 0, 0, 0.7, 0.9], prompt="k_shot")]
    df = compare_prompts(curves)
    assert df[df.prompt == "k_shot"].iloc[0]["direction"] == "same"


def test_transition_without_intervals_is_strict_by_default_and_honours_the_minimum_effect():
    nan = [math.nan] * 5
    at_chance = curve([0.25] * 5, chance=0.25, lo=nan, hi=nan, metric="multiple_choice_grade")
    assert transition_index(at_chance) is None  # sitting at chance is not above it
    barely = curve([0.0, 0.001, 0.002, 0.01, 0.5], chance=0.0, lo=nan, hi=nan)
    assert transition_index(barely) == 1 and transition_index(barely, min_effect=0.02) == 4
    assert transition_scale(barely, min_effect=0.02) == SIZES[4]


def test_verdicts_carry_bigbench_normalised_scores_where_the_metric_has_bounds():
    from dataclasses import replace

    mc = replace(curve([0.25, 0.25, 0.3, 0.5, 0.625], metric="multiple_choice_grade", chance=0.25), best=1.0)
    v = judge(mc)
    assert v.normalized_first == pytest.approx(0.0) and v.normalized_last == pytest.approx(50.0)
    no_bounds = judge(curve([0.1, 0.2, 0.3, 0.4, 0.5], metric="x", kind="continuous"))
    assert math.isnan(no_bounds.normalized_last)
    assert "normalized_last" in verdict_table([v]).columns
