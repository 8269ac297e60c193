"""Emergence score, linearity, breakthroughness and normalised score on hand-computed curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.analysis.scores import (
    bigbench_normalized,
    breakthroughness,
    emergence_score,
    linearity,
    normalized_score,
    total_change,
)

SIZES = [1e6, 1e7, 1e8, 1e9, 1e10]


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_straight_line_in_log_x_scores_n_minus_one(n):
    x = np.logspace(6, 6 + n - 1, n)
    y = 0.1 * np.arange(n) + 0.2
    assert emergence_score(x, y) == pytest.approx(n - 1)
    assert linearity(x, y) == pytest.approx(n - 1)
    assert breakthroughness(x, y) == pytest.approx(n - 1)


def test_order_comes_from_x_not_from_the_input_order():
    x = [1e9, 1e6, 1e10, 1e7, 1e8]
    y = [3.0, 0.0, 4.0, 1.0, 2.0]  # a rising line once sorted by x
    assert emergence_score(x, y) == pytest.approx(4.0)
    assert emergence_score(x, y[::-1]) != pytest.approx(4.0)


def test_step_function():
    y = [0.0, 0.0, 0.0, 0.0, 1.0]  # diffs 0,0,0,1: median square 0, mean square 1/4
    assert emergence_score(SIZES, y) == math.inf
    assert breakthroughness(SIZES, y) == math.inf
    assert linearity(SIZES, y) == pytest.approx(1 / math.sqrt(1 / 4))  # sqrt(n-1) = 2 < n-1 = 4


def test_all_zero_then_jump_is_infinite_not_a_division_error():
    y = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.35]
    assert emergence_score(range(7), y) == math.inf
    assert emergence_score(range(7), [0.35, 0, 0, 0, 0, 0, 0]) == -math.inf  # falls with scale


def test_two_step_rise_is_finite_and_above_the_line_baseline():
    y = [0.0, 0.0, 0.5, 1.0, 1.0]  # steps 0, .5, .5, 0: median square (0 + .25)/2 = .125
    assert emergence_score(SIZES, y) == pytest.approx(1 / math.sqrt(0.125))
    assert linearity(SIZES, y) == pytest.approx(1 / math.sqrt(0.5 / 4))


def test_u_shape():
    y = [3.0, 2.0, 1.0, 2.0, 3.0]  # argmax 0 (first), argmin 2: sign -1, range 2, every step 1
    assert total_change(np.array(y)) == -2.0
    assert emergence_score(SIZES, y) == pytest.approx(-2.0)
    assert linearity(SIZES, y) == pytest.approx(-2.0)
    inverse_then_recovering = [0.6, 0.4, 0.2, 0.5, 0.9]  # min at 2, max at 4: +0.7 over steps .2,.2,.3,.4
    assert emergence_score(SIZES, inverse_then_recovering) == pytest.approx(0.7 / math.sqrt((0.04 + 0.09) / 2))


def test_flat_noisy_series_scores_far_below_the_baseline():
    y = [0.50, 0.52, 0.49, 0.51, 0.50]  # steps .02 -.03 .02 -.01: median square .0004, range .03, argmax 1 < argmin 2
    assert emergence_score(SIZES, y) == pytest.approx(-0.03 / 0.02)
    assert linearity(SIZES, y) == pytest.approx(-0.03 / math.sqrt((0.0004 + 0.0009 + 0.0004 + 0.0001) / 4))


def test_flat_and_degenerate_curves():
    assert emergence_score(SIZES, [0.2] * 5) == 0.0
    assert linearity(SIZES, [0.2] * 5) == 0.0
    assert math.isnan(emergence_score([1e6], [0.3]))
    assert math.isnan(linearity([], []))
    assert emergence_score([1, 2, 3, 4], [0.0, math.nan, 1.0, 2.0]) == pytest.approx(2.0)  # NaN point dropped
    with pytest.raises(ValueError):
        emergence_score([1, 2, 3], [0.0, 1.0])


def test_scores_ignore_positive_affine_maps_so_normalising_only_sets_direction():
    y = np.array([0.30, 0.28, 0.22, 0.10, 0.02])  # Brier score falling (improving) with size
    chance, best = 0.30, 0.0
    assert emergence_score(SIZES, y) < 0
    normed = normalized_score(y, chance, best)
    assert emergence_score(SIZES, normed) == pytest.approx(-emergence_score(SIZES, y))
    assert linearity(SIZES, 3 * y + 1) == pytest.approx(linearity(SIZES, y))


def test_normalized_score():
    assert normalized_score(0.25, 0.25, 1.0) == 0.0
    assert normalized_score(1.0, 0.25, 1.0) == 100.0
    assert normalized_score(0.625, 0.25, 1.0) == pytest.approx(50.0)
    assert normalized_score(0.0, 0.25, 1.0) == pytest.approx(-100 / 3)  # below chance is negative
    assert normalized_score(0.1, 0.2, 0.0) == pytest.approx(50.0)  # lower-is-better metric
    assert np.allclose(normalized_score([0.25, 1.0], 0.25, 1.0), [0.0, 100.0])
    with pytest.raises(ValueError):
        normalized_score(0.5, 0.3, 0.3)


def test_bigbench_normalized_uses_chance_and_the_perfect_score():
    assert bigbench_normalized(0.625, 0.25, 1.0) == pytest.approx(50.0)  # MC grade, 4 options
    assert bigbench_normalized(0.25, 0.25, 1.0) == 0.0 and bigbench_normalized(0.1, 0.25, 1.0) < 0
    assert bigbench_normalized(0.09375, 0.1875, 0.0) == pytest.approx(50.0)  # Brier: lower is better
    assert bigbench_normalized(0.5, None, 1.0) is None and bigbench_normalized(0.5, 0.0, None) is None
    assert bigbench_normalized(0.5, 1.0, 1.0) is None and bigbench_normalized(math.nan, 0.0, 1.0) is None


def test_built_in_metrics_declare_their_perfect_score():
    from orchestrator.metrics import get

    best = {
        n: get(n).best
        for n in (
            "exact_match",
            "multiple_choice_grade",
            "brier_score",
            "token_edit_distance",
            "target_logprob",
            "target_token_prob",
            "correct_option_prob",
            "calibration_ece",
        )
    }
    assert best == {
        "exact_match": 1.0,
        "multiple_choice_grade": 1.0,
        "brier_score": 0.0,
        "token_edit_distance": 0.0,
        "target_logprob": 0.0,
        "target_token_prob": 1.0,
        "correct_option_prob": 1.0,
        "calibration_ece": 0.0,
    }


def test_trend_lag_reads_the_curve_against_a_steady_rise_per_decade():
    from orchestrator.analysis.scores import trend_lag

    x = [1e8, 1e9, 1e10, 1e11, 1e12]
    assert trend_lag(x, [0.1, 0.3, 0.5, 0.7, 0.9], 2) == pytest.approx(0.0)  # a straight line in log10(x)
    assert trend_lag(x, [0, 0, 0.01, 0.4, 0.8], 2) == pytest.approx(
        0.5 - 0.01 / 0.8
    )  # near its start at 2 of 4 decades
    assert trend_lag(x, [0.0, 0.6, 0.8, 0.9, 1.0], 1) == pytest.approx(0.25 - 0.6)  # an early rise lags negatively
    # the same scores, the floor bunched into a fifth of a decade: hardly any lag
    assert trend_lag([1e8, 1.26e8, 1.58e8, 1e12], [0, 0, 0, 0.8], 2) == pytest.approx(0.05, abs=0.001)
    assert trend_lag(list(reversed(x)), [0.9, 0.7, 0.5, 0.3, 0.1], 2) == pytest.approx(0.0)  # sorted by x first
    assert math.isnan(trend_lag(x, [0.3] * 5, 2))
    with pytest.raises(ValueError, match="i=5"):
        trend_lag(x, [0.1] * 5, 5)
