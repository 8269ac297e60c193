"""The mirage table: is an emergent curve a property of the model or of the metric? Pure.

Schaeffer, Miranda & Koyejo (2023, "Are Emergent Abilities of Large Language
Models a Mirage?") show that on the same model outputs a discontinuous metric
(exact match, multiple-choice grade) can jump while a continuous one (token
edit distance, Brier score) improves smoothly: exact match on an L-token answer
is ~ p^L of a smoothly improving per-token accuracy p.

Each discontinuous metric has **declared partners**, fixed before any curve
is seen, that score the same outputs continuously:

- exact_match, exact_str_match, subset_accuracy (generations):
  token_edit_distance, char_edit_distance, target_logprob, target_token_prob
  (and log_likelihood, BIG-bench results files' name for the target log-probability);
- multiple_choice_grade (option log-likelihoods): brier_score,
  correct_option_prob (Schaeffer et al. sec. 4 replace MC grade by Brier).

A user may declare more (`analysis.partners`, e.g. {acc: [target_logprob]}
for a published table), before looking; they come after the built-in ones.
The first declared partner present in the sweep, in that order, is the
**counted** one: the headline counts a mirage only when the discontinuous
metric is emergent and its counted partner is smooth. Counting "smooth under
any of several continuous metrics" would let the analysis pick whichever
agrees; the other declared partners are shown beside it.

Any other continuous metric of the same task x prompt (a user's, or a
published table's: bleu, rouge, f1, perplexity...) is shown as **not
declared**: the table says what it found, but it never makes a mirage, since
nothing says it reads the same outputs on the same scale. A declared partner
of the other kind of output (Brier for exact match) is never paired, nor is
calibration_ece (a calibration error, not a measure of getting it right).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pandas as pd

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.verdicts import Verdict, format_params

GENERATION_PARTNERS = (
    "token_edit_distance",
    "char_edit_distance",
    "target_logprob",
    "target_token_prob",
    "log_likelihood",  # BIG-bench results files' name for the target's log-probability (json_task.py)
)
OPTION_PARTNERS = ("brier_score", "correct_option_prob")
DECLARED: dict[str, tuple[str, ...]] = {
    "exact_match": GENERATION_PARTNERS,
    "exact_str_match": GENERATION_PARTNERS,
    "subset_accuracy": GENERATION_PARTNERS,
    "multiple_choice_grade": OPTION_PARTNERS,
}
# continuous metrics that are some discontinuous metric's declared partner: never an undeclared pair
_ALL_DECLARED = frozenset(GENERATION_PARTNERS) | frozenset(OPTION_PARTNERS)
NOT_PERFORMANCE = frozenset({"calibration_ece"})

COLUMNS = [
    "task",
    "prompt",
    "emergent_under",  # "discontinuous" | "continuous": which side of the pair is emergent
    "discontinuous_metric",
    "discontinuous_label",
    "discontinuous_confidence",
    "discontinuous_emergence_score",
    "discontinuous_ratio",
    "discontinuous_transition",
    "continuous_metric",
    "declared",  # the continuous metric is a declared partner of the discontinuous one
    "counted",  # ... and the one the headline counts (the first declared partner present)
    "continuous_axis",
    "continuous_label",
    "continuous_confidence",
    "continuous_alt_axis",  # the other axis of the continuous metric (power law by default), shown not deciding
    "continuous_alt_label",
    "continuous_emergence_score",
    "continuous_ratio",
    "continuous_r2",
    "continuous_transition",
    "n_sizes",
    "mirage",  # counted pair: emergent under the discontinuous metric, smooth under its counted partner
    "flag",
]


def counterparts(
    metric: str, available: Sequence[str], partners: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """The declared partners of discontinuous `metric` among `available`, in declared order (first = counted).

    `partners` (config `analysis.partners`) adds the user's own declarations
    after the built-in ones, e.g. {"acc": ["target_logprob"]} for a published
    table whose accuracy and log-probability score the same outputs.
    """
    own = [m for m in (partners or {}).get(metric, ()) if m not in DECLARED.get(metric, ())]
    return [m for m in (*DECLARED.get(metric, ()), *own) if m in available]


def undeclared(
    metric: str, available: Sequence[str], partners: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """Continuous metrics among `available` shown beside `metric` but declared partners of nothing."""
    mine = set((partners or {}).get(metric, ()))
    return [m for m in available if m not in _ALL_DECLARED and m not in NOT_PERFORMANCE and m not in mine]


def mirage_table(
    curves: Sequence[Curve], verdicts: Sequence[Verdict], partners: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """One row per (discontinuous, continuous) metric pair of a task x prompt where either side is emergent.

    Declared pairs first (the counted one first), then undeclared ones.
    `mirage` is True only on a counted row whose discontinuous metric is
    emergent and whose partner is smooth. Rows are sorted by task, prompt and
    discontinuous metric; an empty table keeps its columns. `partners`: the
    user's declarations, as in `counterparts`.
    """
    kinds = {(c.task, c.prompt, c.metric): c.kind for c in curves}
    by_key: dict[tuple[str, str], dict[str, Verdict]] = {}
    for v in verdicts:
        kind = kinds.get((v.task, v.prompt, v.metric), v.kind)
        if kind != v.kind:
            v = replace(v, kind=kind)
        by_key.setdefault((v.task, v.prompt), {})[v.metric] = v
    rows = []
    for (task, prompt), group in sorted(by_key.items()):
        disc = sorted(m for m, v in group.items() if v.kind == "discontinuous")
        cont = sorted(m for m, v in group.items() if v.kind == "continuous")
        for d in disc:
            declared = counterparts(d, cont, partners)
            for i, c in enumerate(declared + undeclared(d, cont, partners)):
                vd, vc = group[d], group[c]
                if vd.label != "emergent" and vc.label != "emergent":
                    continue
                rows.append(_row(task, prompt, vd, vc, declared=c in declared, counted=i == 0 and c in declared))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(task: str, prompt: str, vd: Verdict, vc: Verdict, *, declared: bool, counted: bool) -> dict[str, object]:
    if vd.label == "emergent":
        side, flag = "discontinuous", f"emergent under {vd.metric}, {vc.label} under {vc.metric}"
    else:
        side, flag = "continuous", f"emergent under {vc.metric}, {vd.label} under {vd.metric}"
    if vc.alt_axis:
        flag += f" ({vc.alt_label} on its {vc.alt_axis} axis)"
    if not declared:
        flag += f"; {vc.metric} is not a declared partner of {vd.metric}: shown, not counted"
    return {
        "task": task,
        "prompt": prompt,
        "emergent_under": side,
        "discontinuous_metric": vd.metric,
        "discontinuous_label": vd.label,
        "discontinuous_confidence": vd.confidence,
        "discontinuous_emergence_score": vd.emergence_score,
        "discontinuous_ratio": vd.emergence_ratio,
        "discontinuous_transition": format_params(vd.transition_scale),
        "continuous_metric": vc.metric,
        "declared": declared,
        "counted": counted,
        "continuous_axis": vc.axis,
        "continuous_label": vc.label,
        "continuous_confidence": vc.confidence,
        "continuous_alt_axis": vc.alt_axis,
        "continuous_alt_label": vc.alt_label,
        "continuous_emergence_score": vc.emergence_score,
        "continuous_ratio": vc.emergence_ratio,
        "continuous_r2": vc.log_fit_r2,
        "continuous_transition": format_params(vc.transition_scale),
        "n_sizes": min(vd.n_sizes, vc.n_sizes),
        "mirage": counted and vd.label == "emergent" and vc.label == "smooth",
        "flag": flag,
    }


def summary(table: pd.DataFrame, verdicts: Sequence[Verdict] = ()) -> str:
    """The headline: how many emergent discontinuous curves are smooth under their counted declared partner.

    With `verdicts`, emergent discontinuous curves with no declared partner in
    the sweep are counted apart ("cannot be checked"), and an empty table tells
    "nothing emergent" from "emergent, but nothing to check against".
    """
    emergent_disc = sorted({v.key for v in verdicts if v.label == "emergent" and v.kind == "discontinuous"})
    if table.empty and not emergent_disc:
        emergent = sorted({v.key for v in verdicts if v.label == "emergent"})
        if emergent:
            return f"{len(emergent)} curve(s) are emergent under a continuous metric only ({_names(emergent)})."
        return "No curve is emergent under any metric."
    disc = table[table["emergent_under"] == "discontinuous"] if not table.empty else table
    keys = {f"{r.task}/{r.prompt}/{r.discontinuous_metric}" for r in disc.itertuples()} | set(emergent_disc)
    checked = {f"{r.task}/{r.prompt}/{r.discontinuous_metric}" for r in disc.itertuples() if r.counted}
    mirages = {f"{r.task}/{r.prompt}/{r.discontinuous_metric}" for r in disc.itertuples() if r.mirage}
    unchecked = sorted(keys - checked)
    conv = table[table["emergent_under"] == "continuous"] if not table.empty else table
    conv_keys = {(r.task, r.prompt, r.continuous_metric) for r in conv.itertuples()}
    frac = f" ({100 * len(mirages) / len(checked):.0f}%)" if checked else ""
    if checked:
        head = (
            f"{len(keys)} emergent curve(s) under a discontinuous metric; {len(checked)} have a declared partner "
            f"(e.g. token_edit_distance for exact match, brier_score for MC grade), and {len(mirages)}{frac} of "
            "those are smooth under it: a mirage of the metric (Schaeffer et al. 2023)."
        )
    else:
        head = (
            f"{len(keys)} emergent curve(s) under a discontinuous metric; none has a declared partner, so none "
            "can be checked for a mirage of the metric (Schaeffer et al. 2023)."
        )
    parts = [head]
    if unchecked:
        parts.append(
            f"{len(unchecked)} cannot be checked: no declared partner scores the same outputs ({_names(unchecked)}); "
            "add token_edit_distance or target_logprob (generations), brier_score (options), or declare "
            "a metric of the same outputs in analysis.partners."
        )
    parts.append(f"{len(conv_keys)} curve(s) are emergent only under a continuous metric.")
    return " ".join(parts)


def _names(keys: Sequence[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
