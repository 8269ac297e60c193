"""BIG-bench fidelity: exact_str_match, 15-bin ECE, BLEU and ROUGE computed as BIG-bench computes them.

The reference functions below are transcribed from bigbench 1.0.0
(`bigbench/api/task_metrics.py`, Apache-2.0, Google LLC and the BIG-bench
authors) and t5 0.9 (`t5/evaluation/metrics.py`, Apache-2.0), which BIG-bench
calls for BLEU and ROUGE; they stand in for the packages, which need
TensorFlow. Our metrics are checked against them on random records, so a
change of bins, tie rule, tokenizer, smoothing or reference handling fails.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import asdict

import numpy as np
import pytest

from orchestrator import metrics as M
from orchestrator.analysis.external import BIGBENCH_METRICS, curves_from_bigbench
from orchestrator.metrics import MetricContext
from orchestrator.record import Record

# --------------------------------------------------------------------------- helpers


def rec(i: int = 0, **fields) -> dict:
    return asdict(Record(cell_id="c", shard_id="s", example_idx=i, prompt="Q: ?\nA: ", **fields))


def mc(logprobs, scores, i: int = 0) -> dict:
    n = len(scores)
    return rec(i, choices=[f"opt{j}" for j in range(n)], choice_logprobs=list(logprobs), choice_scores=list(scores))


def score(name: str, records, **ctx) -> list[float]:
    return M.compute(name, records, MetricContext(**ctx))


# --------------------------------------------------------------------------- BIG-bench's code, transcribed


def bb_probability_from_sample(sample):
    choices = sample["choice"]
    target_scores_dict = sample["target_scores"]
    if sum(target_scores_dict.values()) == 0:
        target_probs = [0 for _ in range(len(target_scores_dict.values()))]
    else:
        ordered_target_scores = [target_scores_dict[c] for c in choices]
        target_probs = [s / sum(ordered_target_scores) for s in ordered_target_scores]
    log_prob = np.array(sample["log_prob"])
    log_prob -= np.max(log_prob)
    probs = np.exp(log_prob) / np.sum(np.exp(log_prob))
    return probs, target_probs


def bb_expected_calibration_error(samples, num_buckets=15):
    confidences, collect_target_probs, collect_probs = [], [], []
    for sample in samples:
        probs, target_probs = bb_probability_from_sample(sample)
        confidences.append(np.max(probs))
        collect_probs.append(probs)
        collect_target_probs.append(target_probs)
    bucket_values = [[] for _ in range(num_buckets)]
    bucket_indices = [[] for _ in range(num_buckets)]
    for i, conf in enumerate(confidences):
        for j in range(num_buckets):
            if conf < float((j + 1) / num_buckets):
                break
        bucket_values[j].append(conf)
        bucket_indices[j].append(i)
    bucket_confidence = [np.mean(b) if len(b) > 0 else np.nan for b in bucket_values]
    bucket_accuracy = [
        np.mean([int(np.argmax(collect_target_probs[i]) == np.argmax(collect_probs[i])) for i in b])
        if len(b) > 0 else np.nan
        for b in bucket_indices
    ]
    ece = 0.0
    for bucket, accuracy, confidence in zip(bucket_values, bucket_accuracy, bucket_confidence, strict=True):
        if len(bucket) > 0:
            ece += (len(bucket) / len(samples)) * abs(accuracy - confidence)
    return ece


def bb_exact_str_match_fn(targets, responses):
    count = 0
    for target, response in zip(targets, responses, strict=True):
        if not isinstance(target, list):
            target = [target]
        if response in target:
            count += 1
    return {"exact_str_match": count / len(targets)}


def t5_bleu(targets, predictions, tokenizer="intl"):
    import sacrebleu

    if isinstance(targets[0], list):
        targets = [[x for x in target] for target in targets]
    else:
        targets = [targets]
    bleu_score = sacrebleu.corpus_bleu(predictions, targets, smooth_method="exp", smooth_value=0.0, force=False,
                                       lowercase=False, tokenize=tokenizer, use_effective_order=False)
    return {"bleu": bleu_score.score}


def bb_bleu_fn(targets, responses):
    max_refs = max([len(target) for target in targets])
    new_targets = copy.deepcopy(targets)
    if len(list(set([len(target) for target in targets]))) > 1:
        for target in new_targets:
            if len(target) < max_refs:
                target += [target[0]] * (max_refs - len(target))
    new_targets = [[target[i] for target in new_targets] for i in range(max_refs)]
    return t5_bleu(new_targets, responses)


def t5_rouge(targets, predictions, score_keys=("rouge1", "rouge2", "rougeLsum")):
    from rouge_score import rouge_scorer, scoring

    scorer = rouge_scorer.RougeScorer(rouge_types=score_keys)
    aggregator = scoring.BootstrapAggregator()
    for prediction, target in zip(predictions, targets, strict=True):
        aggregator.add_scores(scorer.score(target=target.replace(" . ", " .\n"),
                                           prediction=prediction.replace(" . ", " .\n")))
    result = aggregator.aggregate()
    return {key: result[key].mid.fmeasure * 100 for key in score_keys}


def bb_rouge_fn(targets, responses):
    rouge_types = ["rouge1", "rouge2", "rougeLsum"]
    max_references = {rouge_type: [] for rouge_type in rouge_types}
    for targ_for_resp, resp in zip(targets, responses, strict=True):
        resp_scores = [t5_rouge([t], [resp]) for t in targ_for_resp]
        for rouge_type in rouge_types:
            best = max(range(len(resp_scores)), key=lambda x, rt=rouge_type: resp_scores[x][rt])
            max_references[rouge_type].append(targ_for_resp[best])
    return {rt: t5_rouge(max_references[rt], responses)[rt] for rt in rouge_types}


WORDS = "the cat sat on a mat . dog ran ðə ˈkæt ɪz 12 1931 Paris paris , ! The".split()


def random_generations(rng: random.Random, n: int) -> tuple[list[list[str]], list[str]]:
    targets = [[" ".join(rng.choices(WORDS, k=rng.randint(1, 9))) for _ in range(rng.randint(1, 3))] for _ in range(n)]
    answers = [" ".join(rng.choices(WORDS, k=rng.randint(0, 9))) for _ in range(n)]
    return targets, answers


# --------------------------------------------------------------------------- 1: nothing generated, no score


def test_free_form_metrics_have_no_score_where_nothing_was_generated():
    """An option-scoring cell stores targets but generates nothing: no groups, no score (it was 0.0)."""
    records = [rec(i, generated=False, answer="", targets=["7"], choices=["6", "7"], choice_scores=[0.0, 1.0],
                   choice_logprobs=[-2.0, -1.0]) for i in range(12)]
    cells = M.summarise(["subset_accuracy", "exact_match", "exact_str_match", "char_edit_distance", "bleu",
                         "rouge1", "rouge2", "rougeLsum", "multiple_choice_grade"], records, n_samples=50)
    for name in ("subset_accuracy", "exact_match", "exact_str_match", "char_edit_distance", "bleu",
                 "rouge1", "rouge2", "rougeLsum"):
        assert math.isnan(cells[name].mean) and cells[name].n == 0, name
        assert cells[name].chance is None, name  # no chance level for a score that does not exist
    assert score("subset_accuracy", records, subset_k=4) == []
    assert cells["multiple_choice_grade"].mean == 1.0  # what the cell did measure still counts


def test_subset_accuracy_groups_only_the_generated_examples():
    made = [rec(i, answer="y", targets=["y"]) for i in range(8)]
    not_made = [rec(100 + i, generated=False, answer="", targets=["y"]) for i in range(8)]
    assert score("subset_accuracy", made + not_made, subset_k=4) == [1.0, 1.0]


# --------------------------------------------------------------------------- 2: exact_str_match


@pytest.mark.parametrize(
    "answer, targets, strict, lenient",
    [
        ("Paris", ["Paris"], 1.0, 1.0),
        ("paris", ["Paris"], 0.0, 1.0),  # case counts
        ("42.", ["42"], 0.0, 1.0),  # punctuation counts
        ("42", ["41", "42"], 1.0, 1.0),  # any target
        ("aɪ noʊ ɪgˈzæktli.", [" aɪ noʊ ɪgˈzæktli."], 1.0, 1.0),  # IPA target with its leading space
        ("café", ["cafe\u0301"], 0.0, 1.0),  # decomposed accent: not the same string
        ("", ["42"], 0.0, 0.0),
    ],
)
def test_exact_str_match_is_verbatim_beside_the_lenient_exact_match(answer, targets, strict, lenient):
    r = [rec(answer=answer, targets=targets)]
    assert score("exact_str_match", r) == [strict]
    assert score("exact_match", r) == [lenient]
    assert M.get("exact_str_match").kind == "discontinuous" and M.get("exact_str_match").best == 1.0


def test_exact_str_match_equals_bigbench_on_stripped_responses():
    rng = random.Random(3)
    targets, answers = random_generations(rng, 200)
    answers = [rng.choice(t) if rng.random() < 0.4 else a for t, a in zip(targets, answers, strict=True)]
    records = [rec(i, answer=a, targets=t) for i, (t, a) in enumerate(zip(targets, answers, strict=True))]
    ours = float(np.mean(score("exact_str_match", records)))
    theirs = bb_exact_str_match_fn([[x.strip() for x in t] for t in targets], [a.strip() for a in answers])
    assert ours == pytest.approx(theirs["exact_str_match"]) and 0.2 < ours < 0.8


def test_exact_str_match_does_not_reapply_the_output_regex():
    """The stored answer is the extraction; "3.5" under BIG-bench's default regex would become "3"."""
    r = [rec(answer="3.5", targets=["3.5"])]
    assert score("exact_str_match", r, output_regex=r"[^\.\?\!\;\n]+") == [1.0]


# --------------------------------------------------------------------------- 3: ECE with BIG-bench's 15 bins


def random_mc(rng: np.random.Generator, i: int) -> tuple[dict, dict]:
    k = int(rng.integers(2, 6))
    lp = rng.normal(0, 2, size=k)
    if rng.random() < 0.2:
        lp[1] = lp[0]  # a tie in the model's scores
    scores = np.zeros(k)
    scores[rng.integers(k)] = 1.0
    if rng.random() < 0.2:
        scores[rng.integers(k)] = 1.0  # several correct options
    if rng.random() < 0.1:
        scores[:] = rng.choice([0.0, 0.5], size=k)  # fractional, or all zero
    choices = [f"opt{j}" for j in range(k)]
    sample = {"choice": choices, "target_scores": dict(zip(choices, scores.tolist(), strict=True)),
              "log_prob": lp.tolist()}
    return mc(lp.tolist(), scores.tolist(), i), sample


def test_calibration_ece_equals_bigbench_measure_expected_calibration_error():
    rng = np.random.default_rng(0)
    for trial in range(30):
        pairs = [random_mc(rng, i) for i in range(int(rng.integers(1, 60)))]
        ours = score("calibration_ece", [p[0] for p in pairs])[0]
        assert ours == pytest.approx(bb_expected_calibration_error([p[1] for p in pairs]), abs=1e-12), trial


def test_calibration_ece_uses_15_bins_and_bigbench_correctness():
    # 0.62 and 0.68 share a bin of 10 but not of 15: |1 - 0.62| / 2 + |0 - 0.68| / 2 (10 bins gave 0.15)
    split = [mc([math.log(0.62), math.log(0.38)], [1, 0], 0), mc([math.log(0.68), math.log(0.32)], [0, 1], 1)]
    assert score("calibration_ece", split) == [pytest.approx(0.19 + 0.34)]
    # a confidence exactly on an edge goes up: 1/3 = 5/15 shares bin 5 with 0.35 (right + wrong), not bin 4
    edge = [mc([0.0, 0.0, 0.0], [1, 0, 0], 0), mc([math.log(0.35), math.log(0.33), math.log(0.32)], [0, 1, 0], 1)]
    assert score("calibration_ece", edge) == [pytest.approx(abs(0.5 - (1 / 3 + 0.35) / 2))]
    # two correct options: BIG-bench counts the pick as right only if it is the first of them
    second = [mc([math.log(0.2), math.log(0.7), math.log(0.1)], [1, 1, 0])]
    assert score("calibration_ece", second) == [pytest.approx(0.7)]
    assert M.definitions.ECE_BINS == 15


# --------------------------------------------------------------------------- 4: BLEU and ROUGE


def test_bleu_equals_bigbench_bleu_fn_over_a_cell():
    rng = random.Random(0)
    for trial in range(20):
        targets, answers = random_generations(rng, rng.randint(1, 25))
        records = [rec(i, answer=a, targets=t) for i, (t, a) in enumerate(zip(targets, answers, strict=True))]
        ours = score("bleu", records)
        assert len(ours) == 1
        assert ours[0] == pytest.approx(bb_bleu_fn(targets, answers)["bleu"] / 100, abs=1e-12), trial


def test_bleu_is_a_corpus_score_with_a_bootstrap_and_partial_credit():
    """Corpus BLEU is not the mean of sentence BLEUs; a near-miss gets partial credit, a copy gets 1."""
    ref = "ðə ˈmeɪleɪ ˈsɛnsəs wɑz ən əˈlɑrm bɛl"
    records = [rec(i, answer=ref.rsplit(" ", i % 3)[0] if i % 3 else ref, targets=[ref]) for i in range(30)]
    cell = M.summarise(["bleu"], records, n_samples=200, seed=1)["bleu"]
    assert 0 < cell.mean < 1 and cell.lo < cell.mean < cell.hi and cell.n == 30 and cell.unit == "cell"
    assert score("bleu", [rec(answer=ref, targets=["other words", ref])]) == [pytest.approx(1.0)]
    assert M.get("bleu").kind == "continuous" and M.get("bleu").higher_is_better and M.get("bleu").best == 1.0


def test_rouge_takes_the_best_target_per_example():
    # "the cat sat" vs "the cat sat on the mat": P = 1, R = 3/6 -> F1 = 2/3; bigrams 2 of 5 -> 4/7
    r = [rec(answer="The cat sat", targets=["a dog", "the cat sat on the mat"])]
    assert score("rouge1", r) == [pytest.approx(2 / 3)]
    assert score("rouge2", r) == [pytest.approx(4 / 7)]
    assert score("rougeLsum", r) == [pytest.approx(2 / 3)]
    for name in ("rouge1", "rouge2", "rougeLsum"):
        m = M.get(name)
        assert (m.kind, m.higher_is_better, m.unit, m.best) == ("continuous", True, "example", 1.0)


def test_rouge_mean_is_what_bigbench_rouge_fn_reports():
    """BIG-bench reports the median of bootstrap means (x100); our cell mean is the mean it estimates."""
    rng = random.Random(1)
    targets, answers = random_generations(rng, 120)
    records = [rec(i, answer=a, targets=t) for i, (t, a) in enumerate(zip(targets, answers, strict=True))]
    np.random.seed(0)  # rouge-score's BootstrapAggregator draws from numpy's global generator
    theirs = bb_rouge_fn(targets, answers)
    for name in ("rouge1", "rouge2", "rougeLsum"):
        per_example = score(name, records)
        assert float(np.mean(per_example)) == pytest.approx(theirs[name] / 100, abs=0.01), name


# --------------------------------------------------------------------------- judge: BIG-bench names


def results_file(size: float, score_dict: dict, preferred: str = "bleu") -> dict:
    return {
        "model": {"model_family": "BIG-G T=0", "model_name": f"{size:g}", "total_params": int(size),
                  "non_embedding_params": int(size)},
        "scores": [{"score_dict": score_dict, "preferred_score": preferred, "number_of_shots": 0,
                    "low_score": 0.0, "high_score": 100.0, "subtask_description": "ipa"}],
        "task": {"task_name": "ipa"},
    }


def test_judge_maps_a_bigbench_metric_only_to_the_same_computation():
    scores = {"exact_str_match": 0.1, "case_insensitive_str_match": 0.2, "bleu": 30.0, "rouge1": 40.0,
              "rouge2": 20.0, "rougeLsum": 38.0, "log_likelihood": -12.0, "expected_calibration_error": 0.3,
              "calibration_multiple_choice_brier_score": 0.2, "macro_f1": 0.4, "weighted_probabilities": 0.3}
    files = [(f"scores_{s:g}.json", results_file(s, dict(scores))) for s in (1e8, 1e9, 1e10)]
    ext = curves_from_bigbench(files)
    got = {c.metric: c for c in ext.curves}
    assert set(got) == {"exact_str_match", "case_insensitive_str_match", "bleu", "rouge1", "rouge2", "rougeLsum",
                        "log_likelihood", "calibration_ece", "brier_score", "macro_f1", "weighted_probabilities"}
    assert "exact_match" not in got  # the lenient exact match is not BIG-bench's exact_str_match
    assert "target_logprob" not in got  # BIG-bench's log_likelihood is a logsumexp over targets, not the max
    assert got["bleu"].y[0] == pytest.approx(0.30) and got["rouge1"].y[0] == pytest.approx(0.40)  # our 0-1 scale
    assert got["bleu"].chance == 0.0 and got["bleu"].best == 1.0  # low/high_score of the preferred metric, rescaled
    assert got["exact_str_match"].y[0] == pytest.approx(0.1)
    assert ext.skipped_metrics == ()


def test_every_bigbench_metric_mapped_to_ours_agrees_with_our_registry():
    """Kind, direction and scale of a mapped metric are the registry's, so judged and swept curves compare."""
    mapped = {bb: spec for bb, spec in BIGBENCH_METRICS.items() if spec.name in M.available()}
    assert set(mapped) == {"exact_str_match", "multiple_choice_grade", "calibration_multiple_choice_brier_score",
                           "expected_calibration_error", "bleu", "rouge1", "rouge2", "rougeLsum"}
    for bb, spec in mapped.items():
        m = M.get(spec.name)
        assert (spec.kind, spec.higher_is_better) == (m.kind, m.higher_is_better), bb
        assert m.best in (0.0, 1.0), bb  # bounded metrics here are 0-1 ...
        # ... so BIG-bench's 0-100 scores (json_task.SCORE_RANGES) are divided by 100, the 0-1 ones are not
        assert spec.scale == (100.0 if bb in ("bleu", "rouge1", "rouge2", "rougeLsum") else 1.0), bb
