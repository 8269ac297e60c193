"""Prompt-style comparison: where each style's curve leaves baseline, and how far another style moves it. Pure.

Prompt format moves scaling curves (docs/science.md): chain-of-thought changes
the curve and where the jump happens, and small models may do worse with it
than without (Wei et al. 2022, "Chain-of-thought prompting"); emoji_movie as
multiple choice improves gradually while free-form generation jumps
(Srivastava et al. 2022). For every task x metric this table gives each
style's transition scale (`verdicts.transition_index`: the smallest size from
which the score stays reliably above chance, or above the first size's
interval, by at least the minimum effect) and its shift from a reference style, in decades of parameters and
in steps of the size grid. The grid is the resolution: a shift of 0 steps
means "not distinguishable with these sizes", whatever the decades say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.verdicts import Verdict, format_params, transition_index

DEFAULT_REFERENCE = "zero_shot"

COLUMNS = [
    "task",
    "metric",
    "prompt",
    "label",
    "confidence",  # the verdict's: clear | borderline
    "transition_scale",
    "transition",  # transition_scale as 1.3B / 350M
    "transition_model",
    "reference_prompt",
    "reference_transition_scale",
    "shift_decades",  # log10(transition / reference transition): negative = earlier
    "shift_steps",  # the same in steps of the task's size grid
    "direction",  # reference | earlier | later | same | only_this | only_reference | neither
    "n_sizes",
]


def compare_prompts(
    curves: Sequence[Curve],
    verdicts: Sequence[Verdict] = (),
    reference: str | None = None,
    min_effect: float = 0.0,
) -> pd.DataFrame:
    """One row per task x metric x prompt style: its transition scale and its shift from `reference`.

    `reference` defaults to "zero_shot" where a task has it, else the task's
    first style in alphabetical order. `label` and `confidence` come from
    `verdicts` when given (matched on task, prompt and metric), else they are
    empty. `min_effect` is how far past baseline a score must be to count
    (`transition_index`: a fraction of the chance-to-perfect range where the
    curve has both, else metric units), beside its interval clearing it.
    """
    labels = {(v.task, v.prompt, v.metric): (v.label, v.confidence) for v in verdicts}
    groups: dict[tuple[str, str], list[Curve]] = {}
    for c in curves:
        groups.setdefault((c.task, c.metric), []).append(c)
    rows = []
    for (task, metric), group in sorted(groups.items()):
        prompts = sorted({c.prompt for c in group})
        ref = reference if reference in prompts else DEFAULT_REFERENCE if DEFAULT_REFERENCE in prompts else prompts[0]
        grid = sorted({float(x) for c in group for x in c.x})
        trans = {c.prompt: _transition(c, min_effect) for c in sorted(group, key=lambda c: c.prompt)}
        ref_scale = trans[ref][0]
        for c in sorted(group, key=lambda c: c.prompt):
            scale, model = trans[c.prompt]
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "prompt": c.prompt,
                    "label": labels.get((task, c.prompt, metric), ("", ""))[0],
                    "confidence": labels.get((task, c.prompt, metric), ("", ""))[1],
                    "transition_scale": math.nan if scale is None else scale,
                    "transition": format_params(scale),
                    "transition_model": model or "",
                    "reference_prompt": ref,
                    "reference_transition_scale": math.nan if ref_scale is None else ref_scale,
                    **_shift(c.prompt == ref, scale, ref_scale, grid),
                    "n_sizes": len(c.x),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _transition(c: Curve, min_effect: float) -> tuple[float | None, str | None]:
    i = transition_index(c, min_effect)
    if i is None:
        return None, None
    return float(c.x[i]), c.models[i] if i < len(c.models) else None


def _shift(is_ref: bool, scale: float | None, ref: float | None, grid: list[float]) -> dict[str, object]:
    if is_ref:
        return {"shift_decades": 0.0 if scale is not None else math.nan, "shift_steps": 0, "direction": "reference"}
    if scale is None and ref is None:
        return {"shift_decades": math.nan, "shift_steps": None, "direction": "neither"}
    if scale is None:
        return {"shift_decades": math.nan, "shift_steps": None, "direction": "only_reference"}
    if ref is None:
        return {"shift_decades": math.nan, "shift_steps": None, "direction": "only_this"}
    steps = int(np.searchsorted(grid, scale) - np.searchsorted(grid, ref))
    direction = "same" if steps == 0 else "earlier" if steps < 0 else "later"
    return {"shift_decades": float(math.log10(scale / ref)), "shift_steps": steps, "direction": direction}
