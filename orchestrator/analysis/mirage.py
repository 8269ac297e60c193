"""The mirage table: is an emergent curve a property of the model or of the metric? Pure.

Schaeffer, Miranda & Koyejo (2023, "Are Emergent Abilities of Large Language
Models a Mirage?") show that on the same model outputs a discontinuous metric
(exact match, multiple-choice grade) can jump while a continuous one (token
edit distance, Brier score) improves smoothly: exact match on an L-token answer
is ~ p^L of a smoothly improving per-token accuracy p. This table lines up,
for every task x prompt style, each discontinuous metric judged emergent with
what the continuous metrics of the same outputs say, and the converse
(emergent under a continuous metric while the discontinuous one is not).

Which continuous metrics read "the same outputs" as a discontinuous one:

- exact_match, subset_accuracy (generations): token_edit_distance,
  char_edit_distance, target_logprob, target_token_prob, the partial-credit
  scores BIG-bench reports (bleu, bleurt, rouge*, sequence_f1), then any other
  continuous metric of the task x prompt (a user's, or a published table's)
  except those that read option log-likelihoods;
- multiple_choice_grade (option log-likelihoods): brier_score,
  correct_option_prob (Schaeffer et al. sec. 4 replace MC grade by Brier),
  then any other continuous metric except those that read generations;
- any other metric: every continuous curve of the task x prompt.
calibration_ece (a calibration error, not a measure of getting it right) is
never a counterpart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.verdicts import Verdict, format_params

GENERATION_COUNTERPARTS = (
    "token_edit_distance",
    "char_edit_distance",
    "target_logprob",
    "target_token_prob",
    # partial-credit scores of the same generations, as BIG-bench results files report them
    "bleu",
    "bleurt",
    "rouge1",
    "rouge2",
    "rougeLsum",
    "sequence_f1",
)
OPTION_COUNTERPARTS = ("brier_score", "correct_option_prob")
COUNTERPARTS: dict[str, tuple[str, ...]] = {
    "exact_match": GENERATION_COUNTERPARTS,
    "subset_accuracy": GENERATION_COUNTERPARTS,
    "multiple_choice_grade": OPTION_COUNTERPARTS,
}
# what a discontinuous metric never pairs with: the continuous scores of the other kind of output
OTHER_OUTPUTS: dict[str, tuple[str, ...]] = {
    "exact_match": OPTION_COUNTERPARTS,
    "subset_accuracy": OPTION_COUNTERPARTS,
    "multiple_choice_grade": GENERATION_COUNTERPARTS,
}
NOT_PERFORMANCE = frozenset({"calibration_ece"})

COLUMNS = [
    "task",
    "prompt",
    "emergent_under",  # "discontinuous" | "continuous": which side of the pair is emergent
    "discontinuous_metric",
    "discontinuous_label",
    "discontinuous_emergence_score",
    "discontinuous_ratio",
    "discontinuous_transition",
    "continuous_metric",
    "continuous_axis",
    "continuous_label",
    "continuous_emergence_score",
    "continuous_ratio",
    "continuous_r2",
    "continuous_transition",
    "n_sizes",
    "mirage",  # emergent under the discontinuous metric, smooth under the continuous one
    "flag",
]


def counterparts(metric: str, available: Sequence[str]) -> list[str]:
    """The continuous metrics among `available` that read the same outputs as discontinuous `metric`.

    The named counterparts first, in their order, then the others in the order given.
    """
    named = [m for m in COUNTERPARTS.get(metric, ()) if m in available]
    excluded = set(named) | set(OTHER_OUTPUTS.get(metric, ())) | NOT_PERFORMANCE
    return named + [m for m in available if m not in excluded]


def mirage_table(curves: Sequence[Curve], verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per (discontinuous, continuous) metric pair of a task x prompt where either side is emergent.

    `flag` reads e.g. "emergent under exact_match, smooth under
    token_edit_distance"; `mirage` is True exactly when the discontinuous
    metric is emergent and the continuous one is smooth: the pattern
    Schaeffer et al. (2023) attribute to the metric. Rows are sorted by task,
    prompt and metrics; an empty table keeps its columns.
    """
    kinds = {(c.task, c.prompt, c.metric): c.kind for c in curves}
    by_key: dict[tuple[str, str], dict[str, Verdict]] = {}
    for v in verdicts:
        kind = kinds.get((v.task, v.prompt, v.metric), v.kind)
        if kind != v.kind:
            v = _with_kind(v, kind)
        by_key.setdefault((v.task, v.prompt), {})[v.metric] = v
    rows = []
    for (task, prompt), group in sorted(by_key.items()):
        disc = sorted(m for m, v in group.items() if v.kind == "discontinuous")
        cont = sorted(m for m, v in group.items() if v.kind == "continuous")
        for d in disc:
            for c in counterparts(d, cont):
                vd, vc = group[d], group[c]
                if vd.label != "emergent" and vc.label != "emergent":
                    continue
                rows.append(_row(task, prompt, vd, vc))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(task: str, prompt: str, vd: Verdict, vc: Verdict) -> dict[str, object]:
    if vd.label == "emergent":
        side, flag = "discontinuous", f"emergent under {vd.metric}, {vc.label} under {vc.metric}"
    else:
        side, flag = "continuous", f"emergent under {vc.metric}, {vd.label} under {vd.metric}"
    return {
        "task": task,
        "prompt": prompt,
        "emergent_under": side,
        "discontinuous_metric": vd.metric,
        "discontinuous_label": vd.label,
        "discontinuous_emergence_score": vd.emergence_score,
        "discontinuous_ratio": vd.emergence_ratio,
        "discontinuous_transition": format_params(vd.transition_scale),
        "continuous_metric": vc.metric,
        "continuous_axis": vc.axis,
        "continuous_label": vc.label,
        "continuous_emergence_score": vc.emergence_score,
        "continuous_ratio": vc.emergence_ratio,
        "continuous_r2": vc.log_fit_r2,
        "continuous_transition": format_params(vc.transition_scale),
        "n_sizes": vd.n_sizes if vd.n_sizes == vc.n_sizes else min(vd.n_sizes, vc.n_sizes),
        "mirage": vd.label == "emergent" and vc.label == "smooth",
        "flag": flag,
    }


def _with_kind(v: Verdict, kind: str) -> Verdict:
    return replace(v, kind=kind)


def summary(table: pd.DataFrame, verdicts: Sequence[Verdict] = ()) -> str:
    """One sentence: how many emergent discontinuous curves the continuous metrics call smooth.

    With `verdicts`, an empty table tells "nothing emergent" from "emergent,
    but no metric of the other kind on the same outputs to check against".
    """
    if table.empty:
        emergent = sorted({v.key for v in verdicts if v.label == "emergent"})
        if emergent:
            names = ", ".join(emergent[:3]) + (", ..." if len(emergent) > 3 else "")
            return (
                f"{len(emergent)} curve(s) are emergent ({names}), "
                "but no metric of the other kind scores the same outputs: add one (e.g. token_edit_distance, "
                "target_logprob, brier_score) to check them."
            )
        return "No curve is emergent under any metric."
    disc = table[table["emergent_under"] == "discontinuous"]
    keys = {(r.task, r.prompt, r.discontinuous_metric) for r in disc.itertuples()}
    mirages = {(r.task, r.prompt, r.discontinuous_metric) for r in disc.itertuples() if r.mirage}
    conv = table[table["emergent_under"] == "continuous"]
    conv_keys = {(r.task, r.prompt, r.continuous_metric) for r in conv.itertuples()}
    frac = f" ({100 * len(mirages) / len(keys):.0f}%)" if keys else ""
    return (
        f"{len(keys)} emergent curve(s) under a discontinuous metric; {len(mirages)}{frac} of them are smooth "
        f"under a continuous metric of the same outputs. {len(conv_keys)} curve(s) are emergent only under a "
        "continuous metric."
    )
