"""The built-in metrics: the ones BIG-bench and the emergence papers use, recomputed from records.

Sources checked (BIG-bench 1.0.0 as shipped on PyPI, `bigbench/api/`):

- `task_metrics.exact_str_match_fn` compares the post-processed output with the
  targets verbatim (`response in target`); `case_insensitive_str_match_fn`
  strips and lower-cases both sides. The post-processing (`postprocess_output`)
  keeps the first match of `output_regex` ("" when nothing matches), and a JSON
  task with neither `output_regex` nor `stop_string` gets the default regex
  ``[^\\.\\?\\!\\;\\n]+`` (json_task.py), i.e. the answer ends at the first
  sentence punctuation. See `normalize_answer` for what is done here.
- `task_metrics.measure_multiple_choice_grade`: the `target_scores` value of the
  option with the highest log-probability, ties broken by `argmax` with a
  deterministic pseudo-random choice seeded by a SHA-256 of the scores.
- `task_metrics.measure_calibration_multiple_choice_brier_score`: see `brier_score`.
- `task_metrics.measure_expected_calibration_error`: see `calibration_ece`.
- `task_metrics.exact_str_match_fn`, `bleu_fn`, `rouge_fn` (through t5 0.9's
  `evaluation.metrics.bleu` / `rouge`, i.e. sacrebleu and rouge-score): see
  `exact_str_match`, `bleu`, `rouge1`.
- json_task.py sets the multiple-choice `low_score` (chance) to the mean over
  examples of mean(target_scores): see `_mc_chance`.

The continuous metrics (edit distances, target log-probability, Brier score)
are the ones Schaeffer, Miranda & Koyejo (2023, "Are Emergent Abilities of
Large Language Models a Mirage?") substitute for exact match and MC grade.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from orchestrator.metrics.registry import (
    MetricContext,
    as_floats,
    as_list,
    as_text,
    cell_metric,
    group_metric,
    is_empty,
    metric,
    record_chance,
)
from orchestrator.record import most_likely

Records = Sequence[Mapping[str, Any]]
NAN = math.nan

# Trailing characters dropped by `normalize_answer`: the sentence punctuation at
# which BIG-bench's default output regex cuts, plus comma and colon. Quotes,
# brackets, % and the like are kept: they can be part of an answer.
TRAILING_PUNCTUATION = ".?!;,:"
ECE_BINS = 15  # BIG-bench's measure_expected_calibration_error (num_buckets=15)


# --------------------------------------------------------------------------- text


def extract_answer(text: str, output_regex: str | None) -> str:
    """BIG-bench's `postprocess_output` regex step: the first match of `output_regex`, "" if none.

    With one capturing group the group is returned (as `re.findall` does);
    a regex with several groups is ambiguous and rejected, as in BIG-bench.
    """
    if not output_regex:
        return text
    found = re.findall(output_regex, text)
    if not found:
        return ""
    first = found[0]
    if isinstance(first, tuple):
        raise ValueError(f"output_regex {output_regex!r} has several groups; use non-capturing groups (?:...)")
    return first


def normalize_answer(text: str) -> str:
    """Normalise an answer or target before exact comparison.

    Unicode NFC (so composed and decomposed accents compare equal), strip
    surrounding whitespace, lower-case, then drop trailing sentence punctuation
    and whitespace (`TRAILING_PUNCTUATION`). This is BIG-bench's
    `case_insensitive_str_match` (strip + lower) plus the effect of its default
    output regex (cut at . ? ! ;) on an answer that ends a sentence; it is
    applied to both sides, so a target like "U.S." still matches itself.
    """
    text = unicodedata.normalize("NFC", text).strip().lower()
    return text.rstrip(TRAILING_PUNCTUATION + " \t\r\n")


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1) between two sequences."""
    a, b = list(a), list(b)
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _answer(record: Mapping[str, Any], ctx: MetricContext) -> str:
    """The stored answer, normalised; the task's `output_regex` is not applied again.

    The pipeline extracted it once (`prompts.extract_answer` applies the regex).
    A second pass would cut a chain-of-thought "3.5" to "3" under BIG-bench's
    default regex, and turn the group "42" of `answer is (\\d+)` into "".
    """
    return normalize_answer(as_text(record.get("answer")))


def _targets(record: Mapping[str, Any]) -> list[str]:
    """Every acceptable target, normalised as the answer is (any of them counts as correct)."""
    return [normalize_answer(as_text(t)) for t in as_list(record.get("targets"))]


def _exact(record: Mapping[str, Any], ctx: MetricContext) -> float:
    targets = _targets(record)
    if not targets:
        return NAN
    return 1.0 if _answer(record, ctx) in targets else 0.0


@record_chance
def _free_form_chance(record: Mapping[str, Any]) -> float:
    """Guessing a free-form string is right with probability ~0; undefined without a generated answer to a target."""
    return 0.0 if not is_empty(record.get("targets")) and not is_empty(record.get("generated")) else NAN


# --------------------------------------------------------------------------- multiple choice


def bigbench_argmax(values: Sequence[float] | np.ndarray) -> int:
    """Index of the maximum; ties broken as BIG-bench's `task_metrics.argmax` does.

    Among tied maxima one is picked by SHA-256 of the float64 bytes of `values`:
    deterministic for the same scores, and unbiased across examples, whereas
    "first maximum" would credit a model that scores all options equally with
    whichever option is listed first (often the correct one in BIG-bench JSON).
    """
    arr = np.asarray(values, dtype=np.float64)
    winners = np.flatnonzero(arr == np.max(arr))
    if len(winners) == 1:
        return int(winners[0])
    digest = int(hashlib.sha256(arr.tobytes()).hexdigest(), 16)
    return int(winners[digest % len(winners)])


def option_probs(logprobs: np.ndarray) -> np.ndarray:
    """softmax of option log-likelihoods: the model's probabilities renormalised over the options."""
    lp = np.asarray(logprobs, dtype=np.float64)
    top = np.max(lp)
    if not np.isfinite(top):  # every option impossible (or NaN): no preference
        return np.full(lp.shape, 1.0 / len(lp))
    w = np.exp(lp - top)
    return w / w.sum()


def _mc(record: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(choice_logprobs, choice_scores) when the record is a scorable multiple-choice example."""
    lp = as_floats(record.get("choice_logprobs"))
    scores = as_floats(record.get("choice_scores"))
    if len(lp) == 0 or len(lp) != len(scores):
        return None
    if np.any(np.isnan(lp)):
        return None  # an option the model could not score (longer than its context): no grade
    return lp, scores


def _target_distribution(scores: np.ndarray) -> np.ndarray:
    """target_scores normalised to sum 1, all zeros if they sum to 0 (BIG-bench `_probability_from_sample`)."""
    total = scores.sum()
    return scores / total if total != 0 else np.zeros_like(scores)


def _brier(probs: np.ndarray, scores: np.ndarray) -> float:
    t = _target_distribution(scores)
    return float(np.mean(t * (probs - 1.0) ** 2 + (1.0 - t) * probs**2))


def _correct_mask(scores: np.ndarray) -> np.ndarray:
    top = scores.max()
    return (scores == top) & (top > 0)


@record_chance
def _mc_chance(record: Mapping[str, Any]) -> float:
    """Expected MC grade of a uniform random pick: mean of mean(target_scores) (BIG-bench json_task low_score)."""
    mc = _mc(record)
    return NAN if mc is None else float(mc[1].mean())


@record_chance
def _correct_prob_chance(record: Mapping[str, Any]) -> float:
    mc = _mc(record)
    return NAN if mc is None else float(_correct_mask(mc[1]).mean())


@record_chance
def _brier_chance(record: Mapping[str, Any]) -> float:
    mc = _mc(record)
    return NAN if mc is None else _brier(np.full(len(mc[1]), 1.0 / len(mc[1])), mc[1])


_MC_NEEDS = ("choice_logprobs", "choice_scores")


# --------------------------------------------------------------------------- the metrics


@metric(
    "exact_match",
    per_record=True,
    kind="discontinuous",
    higher_is_better=True,
    needs=("targets", "generated"),
    chance=_free_form_chance,
    best=1.0,
)
def exact_match(records: Records, ctx: MetricContext) -> list[float]:
    """1 if the stored answer equals any target after `normalize_answer` (both sides), else 0.

    The lenient form of BIG-bench's `exact_str_match` (any of the targets counts);
    the answer was extracted once by the pipeline (`output_regex` is not applied again). An empty answer
    matches nothing but an empty target. NaN for an example without targets.
    """
    return [_exact(r, ctx) for r in records]


@metric(
    "multiple_choice_grade",
    per_record=True,
    kind="discontinuous",
    higher_is_better=True,
    needs=_MC_NEEDS,
    chance=_mc_chance,
    best=1.0,
)
def multiple_choice_grade(records: Records, ctx: MetricContext) -> list[float]:
    """The choice_score (BIG-bench target_score, may be fractional) of the highest-log-likelihood option.

    Ties are broken by `bigbench_argmax`. NaN for an example without options.
    """
    out = []
    for r in records:
        mc = _mc(r)
        out.append(NAN if mc is None else float(mc[1][bigbench_argmax(mc[0])]))
    return out


def _subset_stats(records: Records, ctx: MetricContext) -> np.ndarray:
    """Per example: (example_idx, exact match), NaN where there is no target to match."""
    return np.array([(float(r.get("example_idx", i)), _exact(r, ctx)) for i, r in enumerate(records)],
                    dtype=np.float64).reshape(len(records), 2)


@group_metric(
    "subset_accuracy",
    kind="discontinuous",
    higher_is_better=True,
    stats=_subset_stats,
    needs=("targets", "generated"),
    chance=_free_form_chance,
    best=1.0,
)
def subset_accuracy(rows: np.ndarray, ctx: MetricContext) -> list[float]:
    """K-of-K accuracy: 1 for a group only if all K of its examples are exact matches.

    Schaeffer et al. (2023, sec. 5) use this to induce "emergence" from a
    smooth per-item accuracy p (a group scores p^K). Examples with targets are
    sorted by `example_idx`, permuted with `numpy.random.default_rng(ctx.seed)`
    and cut into disjoint groups of `ctx.subset_k`; the incomplete tail group is
    dropped. The grouping depends only on the example ids and the seed, so every
    cell (model size) of a sweep uses the same groups. One score per group; no
    groups, so NaN for the cell, where nothing was generated (`rows` are the
    valid (example_idx, exact) rows of `_subset_stats`: records with targets
    that were generated).
    """
    k = int(ctx.subset_k)
    if k < 1:
        raise ValueError(f"subset_k must be >= 1, got {k}")
    hits = rows[np.argsort(rows[:, 0], kind="stable"), 1] if len(rows) else np.zeros(0)  # by example id
    order = np.random.default_rng(ctx.seed).permutation(len(hits))
    n_groups = len(hits) // k
    groups = hits[order[: n_groups * k]].reshape(n_groups, k)
    return groups.min(axis=1).tolist() if n_groups else []


@metric(
    "token_edit_distance",
    per_record=True,
    kind="continuous",
    higher_is_better=False,
    needs=("target_answer_token_ids", "generated"),
    best=0.0,
)
def token_edit_distance(records: Records, ctx: MetricContext) -> list[float]:
    """Levenshtein distance in tokens between the answer and the nearest acceptable target.

    Schaeffer et al. (2023): ~ L x per-token error, so it falls smoothly with
    scale. Both sides are the stored `answer_token_ids` / `target_answer_token_ids`:
    the extracted answer and each target after `normalize_answer`, tokenized
    the same way (each string on its own, no special tokens), so 0 exactly
    when exact_match counts the answer correct, on every prompt format; the
    minimum over targets, as exact match accepts any of them. An empty answer
    scores the shortest target's length. NaN without targets, and for records
    written before RECORD_VERSION 2 (they lack these token ids).
    """
    out = []
    for r in records:
        answer = as_list(r.get("answer_token_ids"))
        targets = [as_list(t) for t in as_list(r.get("target_answer_token_ids"))]
        out.append(float(min(levenshtein(answer, t) for t in targets)) if targets else NAN)
    return out


@metric(
    "char_edit_distance", per_record=True, kind="continuous", higher_is_better=False, needs=("targets", "generated"),
    best=0.0,
)
def char_edit_distance(records: Records, ctx: MetricContext) -> list[float]:
    """Levenshtein distance over characters between the answer and the nearest acceptable target.

    Both sides are normalised as in exact_match (`normalize_answer`; the answer
    as extracted by the pipeline), and the minimum is taken over the targets
    because exact match accepts any of them: 0 exactly for an exact match.
    """
    out = []
    for r in records:
        targets = _targets(r)
        answer = _answer(r, ctx)
        out.append(float(min(levenshtein(answer, t) for t in targets)) if targets else NAN)
    return out


@metric("target_logprob", per_record=True, kind="continuous", higher_is_better=True, needs=("target_logprobs",),
        best=0.0)
def target_logprob(records: Records, ctx: MetricContext) -> list[float]:
    """log p(target | prompt) of the most likely acceptable target: max over targets of the summed token log p.

    Exact match accepts any target, so the model is credited with the one it
    finds most likely. NaN when any target could not be scored (it might be that one).
    """
    out = []
    for r in records:
        lps = as_floats(r.get("target_logprobs"))
        best = most_likely(lps)
        out.append(float(lps[best]) if best >= 0 else NAN)
    return out


@metric(
    "target_token_prob", per_record=True, kind="continuous", higher_is_better=True, needs=("target_token_logprobs",),
    best=1.0,
)
def target_token_prob(records: Records, ctx: MetricContext) -> list[float]:
    """Per-token probability exp(mean token log p) of the most likely target: the p in Schaeffer's p^L.

    The target is the one target_logprob picks (the record stores its per-token
    log-probs). NaN for a multi-target record written before RECORD_VERSION 2,
    which stored the first target's tokens whatever its likelihood.
    """
    out = []
    for r in records:
        lps = as_floats(r.get("target_token_logprobs"))
        old = is_empty(r.get("record_version")) and len(as_list(r.get("target_logprobs"))) > 1
        out.append(float(np.exp(lps.mean())) if len(lps) and not old else NAN)
    return out


@metric(
    "brier_score",
    per_record=True,
    kind="continuous",
    higher_is_better=False,
    needs=_MC_NEEDS,
    chance=_brier_chance,
    best=0.0,
)
def brier_score(records: Records, ctx: MetricContext) -> list[float]:
    """Multiple-choice Brier score on BIG-bench's scale (mean over options, not sum).

    Per example: (1/K) sum_i [t_i (p_i - 1)^2 + (1 - t_i) p_i^2] with
    p = softmax(choice_logprobs) and t = choice_scores / sum(choice_scores),
    exactly BIG-bench's `measure_calibration_multiple_choice_brier_score` (its
    docstring says "correct = max score", its code uses the normalised scores,
    followed here). For a one-hot target this is mean_i (p_i - y_i)^2 in [0, 2/K],
    i.e. 1/K of the classic multi-class Brier score (Brier 1950, range [0, 2]);
    for fractional targets it adds BIG-bench's irreducible t_i(1 - t_i) term.
    BIG-bench pools all (example, option) pairs, so its cell value weights
    examples by K; the mean over examples here equals it when every example
    has the same number of options. Schaeffer et al. (2023) use this score.
    """
    out = []
    for r in records:
        mc = _mc(r)
        out.append(NAN if mc is None else _brier(option_probs(mc[0]), mc[1]))
    return out


@metric(
    "correct_option_prob",
    per_record=True,
    kind="continuous",
    higher_is_better=True,
    needs=_MC_NEEDS,
    chance=_correct_prob_chance,
    best=1.0,
)
def correct_option_prob(records: Records, ctx: MetricContext) -> list[float]:
    """Normalised probability mass on the options with the maximal (positive) choice_score.

    The continuous counterpart of MC grade: it rises smoothly while the argmax
    (and so the grade) still jumps. 0 when no option has a positive score.
    """
    out = []
    for r in records:
        mc = _mc(r)
        out.append(NAN if mc is None else float(option_probs(mc[0])[_correct_mask(mc[1])].sum()))
    return out


def _ece_stats(records: Records, ctx: MetricContext) -> np.ndarray:
    """Per example: (confidence, correct) exactly as BIG-bench's measure_expected_calibration_error.

    confidence = max of softmax(choice_logprobs); correct = 1 when the first
    most probable option is the first option with the top normalised target
    score (`np.argmax` on both, `_compute_bucket_accuracy`): plain first-index
    ties, not the hash tie-break of multiple_choice_grade, and with several
    top-scored options only the first counts. Scores summing to 0 make every
    target probability 0, so option 0 counts as correct there, as in BIG-bench.
    """
    rows = np.full((len(records), 2), np.nan)
    for i, r in enumerate(records):
        mc = _mc(r)
        if mc is None:
            continue
        lp, scores = mc
        probs = option_probs(lp)
        rows[i, 0] = probs.max()
        rows[i, 1] = float(np.argmax(_target_distribution(scores)) == np.argmax(probs))
    return rows


@cell_metric(
    "calibration_ece",
    kind="continuous",
    higher_is_better=False,
    stats=_ece_stats,
    needs=_MC_NEEDS,
    best=0.0,
)
def calibration_ece(stats: np.ndarray) -> float:
    """Expected calibration error of max-option confidence vs correctness, 15 equal-width bins.

    ECE = sum_b (n_b / n) |acc_b - conf_b| (Naeini et al. 2015), computed as
    BIG-bench 1.0.0's `task_metrics.measure_expected_calibration_error`, so the
    number compares with BIG-bench's `expected_calibration_error`: B = ECE_BINS
    = 15 bins, a confidence c falls in the first bin b with c < (b+1)/B (c = 1
    in the last, `_compute_bucket_scores`), empty bins add nothing, and
    "correct" is BIG-bench's argmax rule (`_ece_stats`). Examples with an
    unscorable option are left out. NaN when no example has options.
    """
    if len(stats) == 0:
        return NAN
    conf, correct = stats[:, 0], stats[:, 1]
    edges = np.arange(1, ECE_BINS + 1) / ECE_BINS
    bins = np.minimum(np.searchsorted(edges, conf, side="right"), ECE_BINS - 1)
    count = np.bincount(bins, minlength=ECE_BINS)
    gap = np.bincount(bins, weights=correct, minlength=ECE_BINS) - np.bincount(bins, weights=conf, minlength=ECE_BINS)
    return float(np.abs(gap).sum() / count.sum())


# --------------------------------------------------------------------------- BIG-bench's generative metrics


@metric(
    "exact_str_match",
    per_record=True,
    kind="discontinuous",
    higher_is_better=True,
    needs=("targets", "generated"),
    chance=_free_form_chance,
    best=1.0,
)
def exact_str_match(records: Records, ctx: MetricContext) -> list[float]:
    """1 if the answer is one of the targets verbatim (case, accents, punctuation kept), else 0.

    BIG-bench 1.0.0's `task_metrics.exact_str_match_fn`: `response in target`
    on the post-processed output, case-sensitive, no normalisation; the lenient
    `exact_match` beside it lower-cases and drops final punctuation. The
    response is the stored `answer` (extracted once by the pipeline, never
    re-extracted here). One difference, stated: the pipeline cuts the answer
    before the stop string and strips surrounding whitespace, so targets are
    stripped too; BIG-bench keeps the stop string in the response and compares
    targets as written (an IPA target " aɪ noʊ" with its leading space).
    """
    out = []
    for r in records:
        targets = [as_text(t).strip() for t in as_list(r.get("targets"))]
        out.append((1.0 if as_text(r.get("answer")).strip() in targets else 0.0) if targets else NAN)
    return out


BLEU_MAX_ORDER = 4


def _bleu_scorer() -> Any:
    """sacrebleu BLEU set as t5.evaluation.metrics.bleu, which BIG-bench's `bleu_fn` calls."""
    from sacrebleu.metrics import BLEU  # imported here: only BLEU needs it

    return BLEU(
        tokenize="intl", smooth_method="exp", smooth_value=0.0, lowercase=False, force=False, effective_order=False
    )


def _bleu_stats(records: Records, ctx: MetricContext) -> np.ndarray:
    """Per example, BLEU's sufficient statistics against all its targets: hyp_len, ref_len, matches[4], totals[4].

    A corpus BLEU is a function of these summed over examples (sacrebleu sums
    the same per-sentence statistics), so the bootstrap can resample them.
    """
    rows = np.full((len(records), 2 + 2 * BLEU_MAX_ORDER), np.nan)
    scorer = None
    for i, r in enumerate(records):
        refs = [as_text(t) for t in as_list(r.get("targets"))]
        if not refs:
            continue
        scorer = scorer or _bleu_scorer()
        s = scorer.corpus_score([as_text(r.get("answer"))], [[t] for t in refs])
        rows[i] = [s.sys_len, s.ref_len, *s.counts, *s.totals]
    return rows


@cell_metric(
    "bleu",
    kind="continuous",
    higher_is_better=True,
    stats=_bleu_stats,
    needs=("targets", "generated"),
    chance=_free_form_chance,
    best=1.0,
)
def bleu(stats: np.ndarray) -> float:
    """Corpus BLEU of the answers against all their targets, as BIG-bench's `bleu`, divided by 100.

    BIG-bench 1.0.0's `task_metrics.bleu_fn` calls t5's `metrics.bleu`:
    `sacrebleu.corpus_bleu(tokenize="intl", smooth_method="exp", lowercase=False,
    use_effective_order=False)` over the cell, every target of an example a
    reference (BIG-bench pads shorter reference lists with the first target,
    which changes nothing). Corpus-level, so one number per cell with a
    bootstrap over examples. On a 0-1 scale like the other bounded metrics
    (`analysis.min_effect` is in metric units): 100 x this is BIG-bench's number.
    """
    from sacrebleu.metrics import BLEU

    k = BLEU_MAX_ORDER
    total = stats.sum(axis=0)
    score = BLEU.compute_bleu(
        correct=[int(v) for v in total[2 : 2 + k]],
        total=[int(v) for v in total[2 + k : 2 + 2 * k]],
        sys_len=int(total[0]),
        ref_len=int(total[1]),
        smooth_method="exp",
        smooth_value=0.0,
        effective_order=False,
        max_ngram_order=k,
    ).score
    return float(score) / 100.0


ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def _t5_rouge_text(text: str) -> str:
    """t5's `_prepare_summary`: a newline after " . " so rougeLsum sees sentences."""
    return text.replace(" . ", " .\n")


def _rouge(records: Records, rouge_type: str) -> list[float]:
    """Per example, the F-measure of `rouge_type` against the best target, as BIG-bench's `rouge_fn`.

    BIG-bench 1.0.0's `task_metrics.rouge_fn` picks, per example and ROUGE
    type, the target with the highest F-measure, then calls t5's
    `metrics.rouge`: `rouge_score.rouge_scorer.RougeScorer` with its defaults
    (no stemming; its tokenizer lower-cases and keeps only a-z and 0-9, so
    non-Latin text such as IPA is scored on its ASCII letters and digits only,
    there as here) after t5's " . " -> " .\\n" sentence split. Its cell value
    is the median of 1,000 unseeded bootstrap means (`BootstrapAggregator`'s
    "mid") times 100; the plain mean of these scores is what that estimates.
    """
    from rouge_score import rouge_scorer  # imported here: only ROUGE needs it

    scorer = rouge_scorer.RougeScorer([rouge_type])
    out = []
    for r in records:
        targets = [as_text(t) for t in as_list(r.get("targets"))]
        answer = _t5_rouge_text(as_text(r.get("answer")))
        scores = [scorer.score(target=_t5_rouge_text(t), prediction=answer)[rouge_type].fmeasure for t in targets]
        out.append(float(max(scores)) if scores else NAN)
    return out


@metric("rouge1", per_record=True, kind="continuous", higher_is_better=True, needs=("targets", "generated"),
        chance=_free_form_chance, best=1.0)
def rouge1(records: Records, ctx: MetricContext) -> list[float]:
    """ROUGE-1 (unigram) F-measure against the best target, as BIG-bench's `rouge1` / 100 (see `_rouge`)."""
    return _rouge(records, "rouge1")


@metric("rouge2", per_record=True, kind="continuous", higher_is_better=True, needs=("targets", "generated"),
        chance=_free_form_chance, best=1.0)
def rouge2(records: Records, ctx: MetricContext) -> list[float]:
    """ROUGE-2 (bigram) F-measure against the best target, as BIG-bench's `rouge2` / 100 (see `_rouge`)."""
    return _rouge(records, "rouge2")


@metric("rougeLsum", per_record=True, kind="continuous", higher_is_better=True, needs=("targets", "generated"),
        chance=_free_form_chance, best=1.0)
def rouge_lsum(records: Records, ctx: MetricContext) -> list[float]:
    """ROUGE-Lsum (summary-level LCS) F-measure against the best target, as BIG-bench's `rougeLsum` / 100."""
    return _rouge(records, "rougeLsum")
