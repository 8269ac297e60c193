"""Curves from scores published elsewhere: BIG-bench results files and long CSV tables. Pure.

Why: the question "is it emergent, or is it the metric?" is asked of published
numbers as often as of a new sweep. These parsers turn such numbers into the
same `Curve`s a sweep produces, so `analyse` gives them the same verdicts,
mirage table and report (`orchestrator judge`). Reading files is the caller's
job (cli.py through store.py); everything here takes parsed JSON or CSV text.

Two formats:

- BIG-bench results files, `bigbench/benchmark_tasks/<task>/results/scores_<family>_<model>.json`,
  as written by BIG-bench's `bigbench/api/results.py` (`ResultsFileData`):
  `{"model": ModelData, "scores": [ScoreData, ...], "task": {"task_name": ...}}`,
  where ModelData has `model_family`, `model_name`, `total_params`,
  `non_embedding_params`, ... and each ScoreData has `score_dict`
  (metric -> value, raw, not BIG-bench's x100 renormalisation),
  `preferred_score`, `number_of_shots`, `low_score`, `high_score` and
  `subtask_description`. BIG-bench metric names are mapped to this project's
  where the two compute the same thing (`BIGBENCH_METRICS`); the preferred
  metric's `low_score` is its random-chance score (json_task.py sets it to the
  mean over examples of mean(target_scores) for multiple_choice_grade).
  The files carry no intervals: verdicts then count a change when it reaches
  the configured minimum effect, and say so in their caveats.
- A long CSV, one row per (model size, metric): `task, prompt, model, params,
  metric, mean` required; `kind` and `higher_is_better` required for metrics
  this project does not define; optional `lo, hi` (an interval), `chance`,
  `best` (the perfect score, for BIG-bench's normalised score), and
  `read_precision` (the half-width of a figure reading, used as the interval
  when `lo`/`hi` are empty). The format of tests/fixtures/literature.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from orchestrator.analysis.curves import Curve


class ExternalDataError(ValueError):
    """Published scores that cannot be read: names the source, the field and the fix."""


@dataclass(frozen=True)
class MetricSpec:
    """How one BIG-bench metric enters the analysis."""

    name: str  # this project's name for it
    kind: str  # "discontinuous" | "continuous"
    higher_is_better: bool
    scale: float = 1.0  # divide by this: BIG-bench's 0-100 scores become fractions, as minimum effects expect


# BIG-bench metric -> this project's metric, only where the two compute the same
# number (checked against bigbench 1.0.0's api/task_metrics.py):
# - exact_str_match: ours is its verbatim `response in targets`, not the lenient exact_match;
# - bleu, rouge1/2/rougeLsum: ours call the same sacrebleu / rouge-score settings (t5's
#   metrics.bleu / rouge) on a 0-1 scale, so BIG-bench's 0-100 values are divided by 100;
# - calibration_multiple_choice_brier_score: ours is its per-option mean (BIG-bench pools
#   options over examples: the same number when every example has as many options, as
#   within a BIG-bench subtask); expected_calibration_error: ours uses its 15 bins and rule.
# Every other BIG-bench metric keeps its own name: log_likelihood is the logsumexp over
# all targets of a multi-target task (BIG-bench's log_likelihood_fn), while target_logprob
# takes the most likely target; case-insensitive and numeric matches have no twin here.
BIGBENCH_METRICS: dict[str, MetricSpec] = {
    "exact_str_match": MetricSpec("exact_str_match", "discontinuous", True),
    "case_insensitive_str_match": MetricSpec("case_insensitive_str_match", "discontinuous", True),
    "multiple_choice_grade": MetricSpec("multiple_choice_grade", "discontinuous", True),
    "numeric_match_with_0_1_relative_error": MetricSpec("numeric_match_with_0_1_relative_error", "discontinuous", True),
    "macro_f1": MetricSpec("macro_f1", "discontinuous", True),  # F1 of argmax picks: all-or-nothing per example
    "calibration_multiple_choice_brier_score": MetricSpec("brier_score", "continuous", False),
    "expected_calibration_error": MetricSpec("calibration_ece", "continuous", False),
    "log_likelihood": MetricSpec("log_likelihood", "continuous", True),
    "log_likelihood_per_word": MetricSpec("log_likelihood_per_word", "continuous", True),
    "log_likelihood_per_char": MetricSpec("log_likelihood_per_char", "continuous", True),
    "weighted_log_probabilities": MetricSpec("weighted_log_probabilities", "continuous", True),
    "weighted_probabilities": MetricSpec("weighted_probabilities", "continuous", True),
    "bleu": MetricSpec("bleu", "continuous", True, 100.0),  # SCORE_RANGES [0, 100] in json_task.py
    "bleurt": MetricSpec("bleurt", "continuous", True),
    "rouge1": MetricSpec("rouge1", "continuous", True, 100.0),
    "rouge2": MetricSpec("rouge2", "continuous", True, 100.0),
    "rougeLsum": MetricSpec("rougeLsum", "continuous", True, 100.0),
    "sequence_f1": MetricSpec("sequence_f1", "continuous", True, 100.0),
}

X_FIELDS = ("non_embedding_params", "total_params", "flop_matched_non_embedding_params")


@dataclass(frozen=True)
class External:
    """Curves read from published scores, and what was left out and why."""

    curves: list[Curve]
    families: tuple[str, ...]
    skipped_metrics: tuple[str, ...]


def bigbench_families(results: Iterable[tuple[str, Mapping]]) -> list[str]:
    """The model families present in parsed BIG-bench results files."""
    return sorted({_family(src, d) for src, d in results})


def curves_from_bigbench(
    results: Iterable[tuple[str, Mapping]],
    family: str | None = None,
    shots: int | None = None,
    x: str = "non_embedding_params",
) -> External:
    """Curves (one per subtask x number of shots x metric) from parsed BIG-bench results files.

    `results` pairs each file's name (for error messages) with its parsed JSON.
    With several model families present, `family` must pick one (a curve is
    one family); `shots` keeps one number of shots; `x` is the ModelData field
    used as scale. Metrics not in BIGBENCH_METRICS are left out and listed.
    """
    if x not in X_FIELDS:
        raise ExternalDataError(f"x={x!r} is not a BIG-bench ModelData size field; use one of {', '.join(X_FIELDS)}")
    results = list(results)
    if not results:
        raise ExternalDataError("no BIG-bench results files (scores_*.json) were found at the given location")
    families = bigbench_families(results)
    if family is None and len(families) > 1:
        raise ExternalDataError(
            f"the results hold {len(families)} model families ({', '.join(families)}); "
            "a curve is one family: pick one with --family"
        )
    if family is not None and family not in families:
        raise ExternalDataError(f"family {family!r} is not in the results; they hold: {', '.join(families)}")
    chosen = family or families[0]

    points: dict[tuple[str, str, str], dict[float, tuple[str, float, float | None, float | None]]] = {}
    skipped: set[str] = set()
    for src, d in results:
        model = _model(src, d)
        if _family(src, d) != chosen:
            continue
        size = _number(src, model, x, "model." + x)
        if size <= 0:
            raise ExternalDataError(f"{src}: model.{x} must be > 0, got {size:g}")
        name = str(model.get("model_name", size))
        task_name = str((d.get("task") or {}).get("task_name", "")) if isinstance(d.get("task"), Mapping) else ""
        entries = d.get("scores")
        if not isinstance(entries, list):
            raise ExternalDataError(f"{src}: field 'scores' must be a list of ScoreData, got {type(entries).__name__}")
        for i, e in enumerate(entries):
            if not isinstance(e, Mapping) or not isinstance(e.get("score_dict"), Mapping):
                raise ExternalDataError(f"{src}: scores[{i}] has no 'score_dict' object")
            n_shots_f = _number(src, e, "number_of_shots", f"scores[{i}].number_of_shots")
            if n_shots_f != int(n_shots_f):
                raise ExternalDataError(f"{src}: scores[{i}].number_of_shots must be a whole number, got {n_shots_f}")
            n_shots = int(n_shots_f)
            if shots is not None and n_shots != shots:
                continue
            task = str(e.get("subtask_description") or task_name or src)
            prompt = f"{n_shots}-shot"
            preferred = e.get("preferred_score")
            for metric, value in e["score_dict"].items():
                spec = BIGBENCH_METRICS.get(metric)
                if spec is None:
                    skipped.add(metric)
                    continue
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise ExternalDataError(f"{src}: scores[{i}].score_dict.{metric} must be a number, got {value!r}")
                if math.isnan(value):
                    continue  # NaN: no score at this size, as a sweep's unscorable cell
                if math.isinf(value):
                    raise ExternalDataError(f"{src}: scores[{i}].score_dict.{metric} is {value}: not a score")
                chance = best = None
                if metric == preferred and e.get("low_score") is not None:
                    chance = _number(src, e, "low_score", f"scores[{i}].low_score") / spec.scale
                if metric == preferred and e.get("high_score") is not None:
                    best = _number(src, e, "high_score", f"scores[{i}].high_score") / spec.scale
                key = (task, prompt, spec.name)
                if size in points.setdefault(key, {}):
                    raise ExternalDataError(
                        f"{src}: a second score for {task} / {prompt} / {metric} at {x}={size:g} "
                        f"(model {name}); two files describe the same model: keep one, or pick a --family"
                    )
                points[key][size] = (name, float(value) / spec.scale, chance, best)
    out = []
    for (task, prompt, metric), by_x in sorted(points.items()):
        spec = next(s for s in BIGBENCH_METRICS.values() if s.name == metric)
        xs = sorted(by_x)
        ys = [by_x[v][1] for v in xs]
        chances = [by_x[v][2] for v in xs if by_x[v][2] is not None]
        bests = {by_x[v][3] for v in xs if by_x[v][3] is not None}
        out.append(
            Curve(
                task=task,
                prompt=prompt,
                metric=metric,
                x=tuple(xs),
                y=tuple(ys),
                lo=tuple(math.nan for _ in xs),
                hi=tuple(math.nan for _ in xs),
                models=tuple(by_x[v][0] for v in xs),
                chance=sum(chances) / len(chances) if chances else None,
                higher_is_better=spec.higher_is_better,
                kind=spec.kind,
                best=bests.pop() if len(bests) == 1 else None,
                meta={"source": "BIG-bench results", "family": chosen},
                x_name=x,
            )
        )
    return External(curves=out, families=tuple(families), skipped_metrics=tuple(sorted(skipped)))


CSV_REQUIRED = ("task", "prompt", "model", "params", "metric", "mean")
CSV_OPTIONAL = ("kind", "higher_is_better", "lo", "hi", "chance", "best", "read_precision")


def curves_from_csv(
    text: str,
    source: str,
    metric_info: Mapping[str, Mapping[str, object]],
    metric_best: Mapping[str, float | None] | None = None,
) -> External:
    """Curves from a long CSV (module docstring): one per task x prompt x metric, sorted by params.

    `metric_info` gives kind and direction of the metrics this project
    defines (scoring.metric_info); rows of other metrics must carry `kind`
    and `higher_is_better` themselves. The perfect score is the `best` column,
    else `metric_best` (the registry's). Lines starting with # and blank lines
    are skipped; errors name the file's own line numbers.
    """
    metric_best = metric_best or {}
    lines = text.splitlines()
    kept = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not kept:
        raise ExternalDataError(f"{source}: no header and no rows")
    line_of = [i + 1 for i in kept[1:]]  # data row r -> its line number in the file
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines[i] for i in kept)), skipinitialspace=True,
                         index_col=False, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ExternalDataError(f"{source}: not a readable CSV ({e})") from e
    missing = [c for c in CSV_REQUIRED if c not in df.columns]
    if missing:
        raise ExternalDataError(
            f"{source}: missing column(s) {', '.join(missing)}; a published-scores CSV needs "
            f"{', '.join(CSV_REQUIRED)} (optional: {', '.join(CSV_OPTIONAL)})"
        )
    if df.empty:
        raise ExternalDataError(f"{source}: no rows")
    for r, row in df.iterrows():
        for col in ("task", "prompt", "model", "metric"):
            if not str(row[col]).strip():
                raise ExternalDataError(f"{source}:{line_of[r]}: {col} is empty")
    out = []
    for (task, prompt, metric), g in df.groupby(["task", "prompt", "metric"], sort=True):
        at = [line_of[r] for r in g.index]
        xs = [_csv_float(source, line_of[r], "params", g.at[r, "params"]) for r in g.index]
        for ln, v in zip(at, xs, strict=True):
            if v <= 0:
                raise ExternalDataError(f"{source}:{ln}: params must be > 0, got {v:g}")
        if len(set(xs)) < len(xs):
            dup = next(v for v in xs if xs.count(v) > 1)
            raise ExternalDataError(f"{source}: two rows for {task} / {prompt} / {metric} at params={dup:g}")
        kind, hib = _csv_kind(source, at, str(metric), g, metric_info)
        rows = []
        for r, x in zip(g.index, xs, strict=True):
            ln = line_of[r]
            y = _csv_float(source, ln, "mean", g.at[r, "mean"])
            lo, hi = _csv_opt(source, ln, g, r, "lo"), _csv_opt(source, ln, g, r, "hi")
            prec = _csv_opt(source, ln, g, r, "read_precision")
            if math.isnan(lo) and math.isnan(hi) and not math.isnan(prec):
                lo, hi = y - prec, y + prec
            rows.append((x, str(g.at[r, "model"]), y, lo, hi, _csv_opt(source, ln, g, r, "chance")))
        rows.sort()
        chances = [r[5] for r in rows if not math.isnan(r[5])]
        bests = {b for b in (_csv_opt(source, line_of[r], g, r, "best") for r in g.index) if not math.isnan(b)}
        if len(bests) > 1:
            raise ExternalDataError(f"{source}:{at[0]}: best differs between the rows of {metric}")
        out.append(
            Curve(
                task=str(task),
                prompt=str(prompt),
                metric=str(metric),
                x=tuple(r[0] for r in rows),
                y=tuple(r[2] for r in rows),
                lo=tuple(r[3] for r in rows),
                hi=tuple(r[4] for r in rows),
                models=tuple(r[1] for r in rows),
                chance=sum(chances) / len(chances) if chances else None,
                higher_is_better=hib,
                kind=kind,
                best=bests.pop() if bests else metric_best.get(str(metric)),
                meta={"source": source},
            )
        )
    return External(curves=out, families=(), skipped_metrics=())


def _model(src: str, d: Mapping) -> Mapping:
    if not isinstance(d, Mapping) or not isinstance(d.get("model"), Mapping):
        raise ExternalDataError(f"{src}: not a BIG-bench results file (no 'model' object with the model's sizes)")
    return d["model"]


def _family(src: str, d: Mapping) -> str:
    fam = _model(src, d).get("model_family")
    if not isinstance(fam, str) or not fam:
        raise ExternalDataError(f"{src}: model.model_family must be a non-empty string, got {fam!r}")
    return fam


def _number(src: str, obj: Mapping, key: str, where: str) -> float:
    v = obj.get(key)
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(float(v)):
        raise ExternalDataError(f"{src}: {where} must be a finite number, got {v!r}")
    return float(v)


def _csv_kind(source: str, at: list[int], metric: str, g: pd.DataFrame, metric_info) -> tuple[str, bool]:
    """kind and higher_is_better of one metric: from its rows (one value for all of them), else the registry."""
    known = metric_info.get(metric)
    kind = _one_value(source, at, g, "kind", metric)
    hib = _one_value(source, at, g, "higher_is_better", metric)
    if kind is None:
        if known is None:
            raise ExternalDataError(
                f"{source}:{at[0]}: metric {metric!r} is not one of this project's; give its 'kind' "
                "(discontinuous | continuous) and 'higher_is_better' (true | false) columns"
            )
        kind = str(known["kind"])
    if kind not in ("discontinuous", "continuous"):
        raise ExternalDataError(f"{source}:{at[0]}: kind={kind!r} for {metric}; use discontinuous or continuous")
    if hib is None:
        if known is None:
            raise ExternalDataError(f"{source}:{at[0]}: metric {metric!r} needs a 'higher_is_better' value")
        return kind, bool(known["higher_is_better"])
    flag = {"true": True, "1": True, "false": False, "0": False}.get(hib.lower())
    if flag is None:
        raise ExternalDataError(f"{source}:{at[0]}: higher_is_better={hib!r} for {metric}; use true or false")
    return kind, flag


def _one_value(source: str, at: list[int], g: pd.DataFrame, col: str, metric: str) -> str | None:
    """The single non-empty value of `col` over a metric's rows, None if all are empty; two values are an error."""
    if col not in g.columns:
        return None
    vals = sorted({str(v).strip() for v in g[col] if str(v).strip()})
    if len(vals) > 1:
        raise ExternalDataError(f"{source}:{at[0]}: {col} differs between the rows of {metric}: {', '.join(vals)}")
    return vals[0] if vals else None


def _csv_float(source: str, line: int, col: str, v: object) -> float:
    text = str(v).strip()
    if not text:
        raise ExternalDataError(f"{source}:{line}: {col} is empty")
    try:
        f = float(text)
    except ValueError:
        raise ExternalDataError(f"{source}:{line}: {col}={text!r} is not a number") from None
    if not math.isfinite(f):
        raise ExternalDataError(f"{source}:{line}: {col}={text!r} is not a finite number")
    return f


def _csv_opt(source: str, line: int, g: pd.DataFrame, r: object, col: str) -> float:
    """An optional number: NaN when the column is absent or the cell empty; an error when it is not a number."""
    if col not in g.columns or not str(g.at[r, col]).strip():
        return math.nan
    return _csv_float(source, line, col, g.at[r, col])
