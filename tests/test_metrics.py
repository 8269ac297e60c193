"""Metrics pinned on hand-worked records, the registry's contract, and the bootstrap."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import unicodedata
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from orchestrator import metrics as M
from orchestrator.metrics import MetricContext, aggregate, compute, registry
from orchestrator.record import Record
from orchestrator.tasks.bigbench import DEFAULT_OUTPUT_REGEX

LN = math.log


def rec(i: int = 0, **fields) -> dict:
    """A stored record as metrics see it: a plain dict with every Record field."""
    return asdict(Record(cell_id="c", shard_id="s", example_idx=i, prompt="Q: ?\nA:", **fields))


def mc(logprobs, scores, i: int = 0) -> dict:
    n = len(scores)
    return rec(i, choices=[f"opt{j}" for j in range(n)], choice_logprobs=list(logprobs), choice_scores=list(scores))


def score(name: str, records, **ctx) -> list[float]:
    return M.compute(name, records, MetricContext(**ctx))


def same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y) for x, y in zip(a, b, strict=True)
    )


@pytest.fixture()
def scratch_registry():
    """Lets a test register metrics and removes them afterwards."""
    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


# --------------------------------------------------------------------------- exact match


@pytest.mark.parametrize(
    "answer, targets, expected",
    [
        ("42", ["42"], 1.0),
        (" 42. ", ["42"], 1.0),  # whitespace and trailing sentence punctuation
        ("42!?", ["42"], 1.0),
        ("Paris", ["paris"], 1.0),  # case
        ("41", ["42"], 0.0),
        ("4.2", ["42"], 0.0),  # inner punctuation is kept
        ("42%", ["42"], 0.0),  # so is a trailing %
        ("", ["42"], 0.0),  # empty output
        ("", [""], 1.0),
        ("nyc", ["New York", "NYC"], 1.0),  # any of several targets
        ("new york.", ["New York", "NYC"], 1.0),
        ("boston", ["New York", "NYC"], 0.0),
        ("U.S.", ["U.S."], 1.0),
        ("Straße", ["straße"], 1.0),
        (unicodedata.normalize("NFD", "Café"), ["café"], 1.0),  # decomposed vs composed accent
        ("東京", ["東京"], 1.0),
        ("東京", ["大阪"], 0.0),
    ],
)
def test_exact_match(answer, targets, expected):
    assert score("exact_match", [rec(answer=answer, targets=targets)]) == [expected]


def test_exact_match_is_nan_without_targets_and_reads_missing_answer_as_empty():
    records = [rec(0, answer="x"), rec(1, answer=None, targets=["x"]), rec(2, answer=float("nan"), targets=[""])]
    out = score("exact_match", records)
    assert math.isnan(out[0]) and out[1:] == [0.0, 1.0]


def test_extract_answer_applies_output_regex_like_bigbench():
    text = "The answer is 42. Then 7"
    assert M.extract_answer(text, r"\d+") == "42"
    assert M.extract_answer(text, r"answer is (\d+)") == "42"  # one group -> the group
    assert M.extract_answer(text, r"[a-z]{20}") == ""  # no match -> ""
    with pytest.raises(ValueError, match="several groups"):
        M.extract_answer(text, r"(answer) is (\d+)")


@pytest.mark.parametrize(
    "answer, regex",
    [
        ("3.5", DEFAULT_OUTPUT_REGEX),  # a chain-of-thought answer: the default regex would cut it to "3"
        ("42", r"answer is (\d+)"),  # a context regex: re-applied to the extracted "42" it finds nothing
    ],
)
def test_metrics_score_the_stored_answer_without_reapplying_the_regex(answer, regex):
    """The pipeline extracts the answer once; a second pass of output_regex made correct answers wrong."""
    r = rec(answer=answer, targets=[answer], answer_token_ids=[1, 2], target_answer_token_ids=[[1, 2]])
    for name in ("exact_match", "char_edit_distance", "token_edit_distance"):
        assert score(name, [r], output_regex=regex) == [1.0 if name == "exact_match" else 0.0], name


def test_bigbench_default_regex_cuts_at_sentence_punctuation():
    assert M.extract_answer("Paris. It is in France", r"[^\.\?\!\;\n]+") == "Paris"
    assert M.extract_answer("abc", None) == "abc"
    assert M.normalize_answer("  Hello World!! \n") == "hello world"


# --------------------------------------------------------------------------- multiple choice


def test_multiple_choice_grade_picks_the_highest_loglikelihood_option():
    records = [
        mc([-1.0, -0.5, -3.0], [0, 1, 0]),
        mc([-0.1, -0.5, -3.0], [0, 1, 0]),
        mc([-0.1, -0.5, -3.0], [0.5, 1, 0]),  # fractional target_scores: the grade is the score
        rec(3, answer="a"),  # no options -> not applicable
        mc([-1.0, -2.0], [1, 0, 0]),  # scores do not line up with options -> not applicable
    ]
    assert same(score("multiple_choice_grade", records), [1.0, 0.0, 0.5, math.nan, math.nan])


def test_multiple_choice_ties_are_broken_as_bigbench_does():
    # BIG-bench task_metrics.argmax: among tied maxima, index sha256(float64 bytes) % n_tied.
    assert M.bigbench_argmax([-1.0, -1.0, -5.0]) == 1
    assert M.bigbench_argmax([-2.0, -7.0, -2.0, -2.0]) == 0
    assert M.bigbench_argmax([0.0, 0.0]) == 1
    assert M.bigbench_argmax(np.array([-1.0, -1.0, -5.0], dtype=np.float32)) == 1  # stored dtype does not matter
    assert score("multiple_choice_grade", [mc([-1.0, -1.0, -5.0], [1, 0, 0])]) == [0.0]
    assert score("multiple_choice_grade", [mc([-1.0, -1.0, -5.0], [0, 1, 0])]) == [1.0]
    # A model with no preference is not credited with the first option: picks spread over the ties.
    picks = [M.bigbench_argmax([-k, -k, -k]) for k in np.linspace(0.1, 20, 300)]
    assert all(60 < picks.count(j) < 140 for j in range(3))


def test_multiple_choice_chance_is_mean_target_score():
    assert M.chance("multiple_choice_grade", [mc([0, 0, 0, 0], [1, 0, 0, 0])]) == pytest.approx(0.25)
    assert M.chance("multiple_choice_grade", [mc([0, 0, 0, 0], [1, 0.5, 0, 0])]) == pytest.approx(0.375)
    mixed = [mc([0, 0], [0, 1], 0), mc([0, 0, 0, 0], [1, 0, 0, 0], 1)]
    assert M.chance("multiple_choice_grade", mixed) == pytest.approx(0.375)
    assert M.chance("multiple_choice_grade", [rec(answer="x", targets=["x"])]) is None


def test_brier_score_on_bigbench_scale():
    p = [0.7, 0.2, 0.1]
    half = [LN(x / 2) for x in p]  # unnormalised log-likelihoods: only their softmax matters
    inf = -math.inf
    records = [
        mc(half, [1, 0, 0]),  # ((0.3)^2 + 0.2^2 + 0.1^2) / 3
        mc([0.0, inf, inf], [1, 0, 0]),  # certain and right
        mc([inf, 0.0, inf], [1, 0, 0]),  # certain and wrong: 2/K
        mc([0.0, 0.0, 0.0], [1, 1, 0]),  # two right answers: t = (1/2, 1/2, 0), see docstring: 2/9
    ]
    assert same(score("brier_score", records), [0.14 / 3, 0.0, 2 / 3, 2 / 9])
    assert M.chance("brier_score", [mc([0] * 4, [1, 0, 0, 0])]) == pytest.approx(3 / 16)  # (K-1)/K^2
    assert M.chance("brier_score", [mc([0] * 3, [1, 1, 0])]) == pytest.approx(2 / 9)


def test_correct_option_prob_sums_mass_on_top_scored_options():
    lp = [LN(0.7), LN(0.2), LN(0.1)]
    records = [
        mc(lp, [1, 0, 0]),
        mc(lp, [1, 1, 0]),
        mc(lp, [0.5, 1, 0]),  # fractional: only the max-score option counts
        mc(lp, [0, 0, 0]),  # nothing correct
        mc([-1.0, -1.0], [1, 0]),  # tie in the model's scores
    ]
    assert same(score("correct_option_prob", records), [0.7, 0.9, 0.2, 0.0, 0.5])
    assert M.chance("correct_option_prob", [mc([0] * 4, [1, 1, 0, 0])]) == pytest.approx(0.5)


def test_calibration_ece_is_one_number_per_cell():
    records = [
        mc([LN(0.9), LN(0.1)], [1, 0], 0),  # conf 0.9, right   -> bin 13 of 15
        mc([LN(0.9), LN(0.1)], [0, 1], 1),  # conf 0.9, wrong   -> bin 13
        mc([LN(0.6), LN(0.4)], [1, 0], 2),  # conf 0.6, right   -> bin 9 (0.6 = 9/15 opens bin 9)
        mc([LN(0.55), LN(0.45)], [1, 0], 3),  # conf 0.55, right -> bin 8
        rec(4, answer="x", targets=["x"]),  # no options: ignored
    ]
    # bin 13: 2/4 * |0.5 - 0.9|; bin 9: 1/4 * |1 - 0.6|; bin 8: 1/4 * |1 - 0.55|
    assert score("calibration_ece", records) == [pytest.approx(0.2 + 0.1 + 0.1125)]
    assert score("calibration_ece", [mc([0.0, -math.inf], [1, 0])]) == [0.0]  # confidence 1 -> last bin
    # BIG-bench's 15 equal-width bins: 0.62 (right, bin 9) and 0.68 (wrong, bin 10) do not share a bin
    # (with 10 bins they would: |1 - 1.30| / 2 = 0.15)
    split = [mc([LN(0.62), LN(0.38)], [1, 0], 0), mc([LN(0.68), LN(0.32)], [0, 1], 1)]
    assert score("calibration_ece", split) == [pytest.approx(0.19 + 0.34)]
    assert math.isnan(score("calibration_ece", [rec(answer="x")])[0])
    assert M.get("calibration_ece").per_example is False
    assert M.get("calibration_ece").unit == "cell"


# --------------------------------------------------------------------------- K-of-K


def test_subset_accuracy_groups_by_seeded_permutation_of_example_idx():
    records = [rec(i, answer="y" if i else "n", targets=["y"]) for i in range(8)]  # example 0 wrong
    # numpy.random.default_rng(0).permutation(8) = [2 4 3 6 5 0 1 7]: example 0 lands in group 2
    assert score("subset_accuracy", records, subset_k=4, seed=0) == [1.0, 0.0]
    shuffled = [records[i] for i in (5, 3, 7, 0, 1, 6, 2, 4)]
    assert score("subset_accuracy", shuffled, subset_k=4, seed=0) == [1.0, 0.0]  # record order is irrelevant
    where_wrong = {tuple(score("subset_accuracy", records, subset_k=4, seed=s)) for s in range(10)}
    assert where_wrong == {(1.0, 0.0), (0.0, 1.0)}  # the seed moves the grouping


def test_subset_accuracy_drops_the_tail_and_needs_all_k_right():
    records = [rec(i, answer="y", targets=["y"]) for i in range(10)]
    assert score("subset_accuracy", records, subset_k=4) == [1.0, 1.0]
    assert score("subset_accuracy", records[:3], subset_k=4) == []
    assert score("subset_accuracy", records + [rec(10, answer="z")], subset_k=5) == [1.0, 1.0]  # no targets: skipped
    with pytest.raises(ValueError):
        score("subset_accuracy", records, subset_k=0)


def test_subset_accuracy_is_about_p_to_the_k():
    hits = np.random.default_rng(1).random(4000) < 0.8
    records = [rec(i, answer="y" if h else "n", targets=["y"]) for i, h in enumerate(hits)]
    assert np.mean(score("subset_accuracy", records, subset_k=1)) == pytest.approx(hits.mean())
    assert np.mean(score("subset_accuracy", records, subset_k=4)) == pytest.approx(0.8**4, abs=0.04)


# --------------------------------------------------------------------------- continuous


def test_levenshtein():
    assert M.levenshtein("kitten", "sitting") == 3
    assert M.levenshtein("flaw", "lawn") == 2
    assert M.levenshtein("", "") == 0
    assert M.levenshtein("", "abc") == 3
    assert M.levenshtein([1, 2, 3], [1, 3]) == 1


def test_token_edit_distance():
    records = [
        rec(0, answer_token_ids=[1, 2, 3], target_answer_token_ids=[[1, 3]]),
        rec(1, answer_token_ids=[], target_answer_token_ids=[[5, 6]]),  # empty answer
        rec(2, answer_token_ids=np.array([7, 8]), target_answer_token_ids=np.array([np.array([7, 8])], dtype=object)),
        rec(3, answer_token_ids=[1]),  # no targets
        # the raw generation's tokens are not what is compared: the extracted answer's are
        rec(4, generation_token_ids=[9, 9, 9, 7], answer_token_ids=[7], target_answer_token_ids=[[7]]),
    ]
    assert same(score("token_edit_distance", records), [1.0, 2.0, 0.0, math.nan, 0.0])
    assert M.get("token_edit_distance").higher_is_better is False


def test_token_edit_distance_is_nan_on_records_without_answer_tokens():
    """A store written before answer tokens were recorded cannot give this metric: NaN, not a wrong number."""
    old = rec(0, answer="12", targets=["12"], generation_token_ids=[3, 4], target_token_ids=[0, 3, 4])
    del old["answer_token_ids"], old["target_answer_token_ids"], old["record_version"]
    assert math.isnan(score("token_edit_distance", [old])[0])


def test_char_edit_distance():
    records = [
        rec(0, answer="Paris.", targets=["paris"]),
        rec(1, answer="Pariss", targets=["paris"]),
        rec(2, answer="naïve", targets=["naive"]),  # one character, not two bytes
        rec(3, answer="", targets=["abc"]),
        rec(5, answer="x"),
    ]
    assert same(score("char_edit_distance", records), [0.0, 1.0, 1.0, 3.0, math.nan])


def test_edit_distances_use_the_nearest_acceptable_target():
    """word_unscrambling: exact match accepts any target, so the distances measure to the nearest one.

    Before, only targets[0] counted: the correct "sith" scored 4 and the wrong "thsi" 2.
    """
    def unscramble(answer: str) -> dict:
        targets = ["this", "sith"]
        return rec(answer=answer, targets=targets, answer_token_ids=[ord(c) for c in answer],
                   target_answer_token_ids=[[ord(c) for c in t] for t in targets])

    correct, wrong = unscramble("sith"), unscramble("thsi")
    assert score("exact_match", [correct, wrong]) == [1.0, 0.0]
    assert score("char_edit_distance", [correct, wrong]) == [0.0, 2.0]
    assert score("token_edit_distance", [correct, wrong]) == [0.0, 2.0]
    assert score("char_edit_distance", [rec(answer="nyc", targets=["New York", "nyc"])]) == [0.0]


def test_target_logprob_and_token_prob():
    records = [
        rec(0, target_logprobs=[-1.5, -3.0], likely_target=0, target_token_logprobs=[-0.1, -0.3]),
        rec(1, target_logprobs=np.array([-2.0]), target_token_logprobs=np.array([LN(0.5), LN(0.5)])),
        rec(2),
    ]
    assert same(score("target_logprob", records), [-1.5, -2.0, math.nan])
    assert same(score("target_token_prob", records), [math.exp(-0.2), 0.5, math.nan])


def test_target_logprob_takes_the_most_likely_acceptable_target():
    """Exact match accepts any target; target log p credits the one the model finds most likely, not targets[0]."""
    r = rec(targets=["this", "sith"], target_logprobs=[-9.0, -2.0], likely_target=1,
            target_token_logprobs=[-0.5, -0.5, -0.5, -0.5])  # the per-token scores stored are those of "sith"
    assert score("target_logprob", [r]) == [-2.0]
    assert score("target_token_prob", [r]) == [pytest.approx(math.exp(-0.5))]
    unscorable = rec(targets=["a", "b"], target_logprobs=[-1.0, math.nan])  # "b" did not fit the context
    assert math.isnan(score("target_logprob", [unscorable])[0])
    # a record written before the most likely target's tokens were stored holds targets[0]'s: no number
    old = dict(r, record_version=math.nan)
    assert math.isnan(score("target_token_prob", [old])[0])
    assert score("target_logprob", [old]) == [-2.0]  # all targets' sums were always stored


# --------------------------------------------------------------------------- registry


def test_unknown_metric_error_lists_known_names():
    with pytest.raises(KeyError) as err:
        M.get("exact_mtach")
    message = str(err.value)
    assert message.startswith("unknown metric 'exact_mtach'; known metrics: ")
    for name in ("exact_match", "multiple_choice_grade", "brier_score", "calibration_ece"):
        assert name in message


def test_builtin_metrics_metadata():
    assert set(M.available()) >= {
        "exact_match",
        "multiple_choice_grade",
        "subset_accuracy",
        "token_edit_distance",
        "char_edit_distance",
        "target_logprob",
        "target_token_prob",
        "brier_score",
        "correct_option_prob",
        "calibration_ece",
    }
    discontinuous = {n for n in M.available() if M.get(n).kind == "discontinuous"}
    assert discontinuous == {"exact_match", "exact_str_match", "multiple_choice_grade", "subset_accuracy"}
    lower_better = {n for n in M.available() if not M.get(n).higher_is_better}
    assert lower_better == {"token_edit_distance", "char_edit_distance", "brier_score", "calibration_ece"}
    assert M.get("subset_accuracy").unit == "group"
    assert M.chance("exact_match", [rec(targets=["a"])]) == 0.0
    assert M.chance("token_edit_distance", [rec(target_answer_token_ids=[[1]])]) is None


def test_registering_a_metric_in_a_few_lines(scratch_registry):
    @M.metric("answer_length", kind="continuous", higher_is_better=False, needs=("targets",))
    def answer_length(records, ctx):
        return [float(len(r["answer"])) for r in records]

    records = [rec(0, answer="abc", targets=["x"]), rec(1, answer="abcd")]
    assert same(M.compute("answer_length", records), [3.0, math.nan])  # needs -> NaN where targets are empty
    assert M.summarise(["answer_length"], records)["answer_length"].n == 1

    with pytest.raises(ValueError, match="already registered"):
        M.metric("answer_length", kind="continuous", higher_is_better=False)(answer_length)
    M.metric("answer_length", kind="continuous", higher_is_better=True, replace=True)(answer_length)
    assert M.get("answer_length").higher_is_better is True
    with pytest.raises(ValueError, match="kind"):
        M.metric("bad", kind="smooth", higher_is_better=True)(answer_length)


def test_registry_checks_output_length(scratch_registry):
    @M.metric("too_short", kind="continuous", higher_is_better=True)
    def too_short(records, ctx):
        return [1.0]

    @M.metric("cell_two", kind="continuous", higher_is_better=True, unit="cell")
    def cell_two(records, ctx):
        return [1.0, 2.0]

    with pytest.raises(ValueError, match="2 records"):
        M.compute("too_short", [rec(0), rec(1)])
    with pytest.raises(ValueError, match="one value"):
        M.compute("cell_two", [rec(0)])


def test_generic_cell_metric_is_bootstrapped_over_records(scratch_registry):
    @M.metric("empty_rate", kind="continuous", higher_is_better=False, unit="cell")
    def empty_rate(records, ctx):
        return [float(np.mean([r["answer"] == "" for r in records]))]

    records = [rec(i, answer="" if i % 4 == 0 else "a") for i in range(40)]
    s = M.summarise(["empty_rate"], records, n_samples=200)["empty_rate"]
    assert (s.mean, s.n, s.unit) == (0.25, 40, "cell")
    assert 0.05 < s.lo < 0.25 < s.hi < 0.5


# --------------------------------------------------------------------------- bootstrap and summaries


def test_bootstrap_is_deterministic_and_contains_the_mean():
    values = np.random.default_rng(3).random(200)
    a = M.bootstrap_ci(values, n_samples=500, seed=7)
    assert a == M.bootstrap_ci(values, n_samples=500, seed=7)
    assert a != M.bootstrap_ci(values, n_samples=500, seed=8)
    mean, lo, hi = a
    assert mean == pytest.approx(values.mean())
    assert lo < mean < hi


def test_bootstrap_matches_the_normal_approximation_and_shrinks_with_data():
    _, lo, hi = M.bootstrap_ci([0.0, 1.0] * 50, n_samples=2000)
    assert (lo, hi) == (pytest.approx(0.5 - 0.098, abs=0.02), pytest.approx(0.5 + 0.098, abs=0.02))
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 500, 5000):
        _, lo, hi = M.bootstrap_ci(rng.random(n) < 0.5, n_samples=300)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_edge_cases():
    assert all(math.isnan(v) for v in M.bootstrap_ci([]))
    assert all(math.isnan(v) for v in M.bootstrap_ci([math.nan, math.nan]))
    assert M.bootstrap_ci([0.3]) == (0.3, 0.3, 0.3)
    assert M.bootstrap_ci([1.0, math.nan, 0.0])[0] == 0.5  # NaN ignored


def test_bootstrap_chunking_does_not_change_the_result(monkeypatch):
    values = np.random.default_rng(5).random(3000)
    whole = M.bootstrap_ci(values, n_samples=400, seed=1)
    monkeypatch.setattr(aggregate, "_MAX_DRAWS", 3000 * 7)  # 7 resamples per chunk
    assert M.bootstrap_ci(values, n_samples=400, seed=1) == whole


def _cell() -> list[dict]:
    free = [rec(i, answer=a, targets=["7"]) for i, a in enumerate(["7", "7.", "8", "7"])]
    choice = [mc([LN(0.8), LN(0.2)], [1, 0], 10), mc([LN(0.3), LN(0.7)], [1, 0], 11)]
    return free + choice


def test_summarise_a_cell():
    out = M.summarise(["exact_match", "multiple_choice_grade", "calibration_ece"], _cell(), n_samples=300, seed=0)
    em = out["exact_match"]
    assert (em.mean, em.n, em.chance, em.kind, em.higher_is_better) == (0.75, 4, 0.0, "discontinuous", True)
    assert em.lo <= em.mean <= em.hi
    grade = out["multiple_choice_grade"]
    assert (grade.mean, grade.n, grade.chance) == (0.5, 2, 0.5)
    ece = out["calibration_ece"]
    # (conf 0.8, right) in bin 8, (conf 0.7, wrong) in bin 7: (0.2 + 0.7) / 2
    assert (ece.mean, ece.n, ece.unit) == (pytest.approx(0.45), 2, "cell")
    assert ece.lo <= ece.mean <= ece.hi
    again = M.summarise(["calibration_ece"], _cell(), n_samples=300, seed=0)["calibration_ece"]
    assert (again.lo, again.hi) == (ece.lo, ece.hi)


def test_summarise_empty_or_inapplicable_does_not_crash():
    names = M.available()
    for records in ([], [rec(0, answer="x")]):
        out = M.summarise(names, records, n_samples=50)
        assert set(out) == set(names)
        for s in out.values():
            assert math.isnan(s.mean) and s.n == 0


def test_records_read_back_from_parquet():
    buf = io.BytesIO()
    pd.DataFrame(_cell()).to_parquet(buf)
    frame = pd.read_parquet(io.BytesIO(buf.getvalue()))
    assert isinstance(frame["choice_scores"].iloc[-1], np.ndarray)  # lists come back as arrays
    names = ["exact_match", "multiple_choice_grade", "brier_score", "calibration_ece"]
    from_frame = M.summarise(names, frame, n_samples=100)
    from_dicts = M.summarise(names, _cell(), n_samples=100)
    for name in names:
        assert from_frame[name].mean == pytest.approx(from_dicts[name].mean)
        assert from_frame[name].n == from_dicts[name].n


def test_metrics_import_no_heavy_dependencies():
    code = (
        "import sys, orchestrator.metrics, orchestrator.analysis.scores;"
        "bad = {'torch', 'ray', 'mlflow', 'fsspec'} & {m.split('.')[0] for m in sys.modules};"
        "print(' '.join(sorted(bad)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "")


def test_free_form_metrics_do_not_apply_where_nothing_was_generated():
    """A multiple-choice (log-likelihood) cell generates nothing: exact match is NaN there, not 0."""
    scored_only = rec(0, generated=False, answer="", targets=["12"], target_token_ids=[3, 4],
                      generation_token_ids=[], target_answer_token_ids=[[3, 4]])
    for name in ("exact_match", "char_edit_distance", "token_edit_distance"):
        assert math.isnan(compute(name, [scored_only])[0]), name
    assert compute("exact_match", [rec(0, generated=True, answer="12", targets=["12"])]) == [1.0]


def test_an_unscorable_option_makes_multiple_choice_metrics_nan():
    """An option longer than the model's context has no log-probability: no grade, no Brier score."""
    r = rec(0, choices=["a", "b"], choice_scores=[1.0, 0.0], choice_logprobs=[float("nan"), -1.0])
    for name in ("multiple_choice_grade", "brier_score", "correct_option_prob"):
        assert math.isnan(compute(name, [r])[0]), name
