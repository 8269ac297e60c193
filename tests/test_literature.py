"""Verdicts on real published curves: the Pythia evaluations (tests/fixtures/literature, Apache-2.0).

The numbers are lm-evaluation-harness results files and per-subtask CSVs published
with the Pythia paper (Biderman et al. 2023), copied verbatim; sizes come from the
model card's parameter table (pythia_params.csv, pythia_1.4b_steps.csv). Each test
reads them the way `orchestrator judge` does (`cli.load_published`) and asserts
what careful readers of these numbers see (tests/fixtures/literature/README.md).
None of these curves was used to set a threshold.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.analysis.external import read_scale_table
from orchestrator.analysis.report import analyse
from orchestrator.cli import load_published, main
from orchestrator.config import AnalysisConfig

LIT = Path(__file__).parent / "fixtures" / "literature"
PARAMS = LIT / "pythia_params.csv"
STEPS = LIT / "pythia_1.4b_steps.csv"


def params_of(model: str) -> float:
    """A model's total parameters from the fixture's table (the model card's numbers)."""
    rows = read_scale_table(PARAMS.read_text(), str(PARAMS))
    return next(r.values["params"] for r in rows if r.model == model)


def judged(source: Path, table: Path | None = PARAMS, x: str | None = None):
    """(curves by (task, prompt, metric), verdicts by the same key) for one fixture folder."""
    _, _, ext = load_published(str(source), params=str(table) if table else None, x=x)
    a = analyse(ext.curves, AnalysisConfig())
    curves = {(c.task, c.prompt, c.metric): c for c in ext.curves}
    verdicts = {(v.task, v.prompt, v.metric): v for v in a.verdicts}
    return curves, verdicts


@pytest.fixture(scope="module")
def sizes():
    return judged(LIT / "pythia_sizes")


@pytest.fixture(scope="module")
def arithmetic():
    return judged(LIT / "pythia_arithmetic")


@pytest.fixture(scope="module")
def training():
    return judged(LIT / "pythia_1.4b_training", STEPS, x="train_step")


def why(v) -> str:
    return f"{v.key}: {v.label} ({v.reason})"


# --------------------------------------------------------------------------- over size


def test_the_fixture_reads_as_eight_sizes_from_the_model_card(sizes):
    curves, _ = sizes
    acc = curves[("lambada_openai", "0-shot", "acc")]
    assert acc.x == tuple(sorted(acc.x)) and len(acc.x) == 8
    assert acc.x[0] == params_of("EleutherAI/pythia-v1.1-70m-deduped") == 70_426_624
    assert acc.x[-1] == 11_846_072_320
    ppl = curves[("lambada_openai", "0-shot", "ppl")]
    lp = curves[("lambada_openai", "0-shot", "target_logprob")]
    assert lp.y == pytest.approx([-math.log(v) for v in ppl.y])  # lm-eval's ppl = exp(-mean log p(target))
    assert all(lo < y < hi for y, lo, hi in zip(acc.y, acc.lo, acc.hi, strict=True))


def test_lambada_improves_smoothly_with_size_under_accuracy_and_log_probability(sizes):
    """Published record: LAMBADA improves steadily with size under both metrics; no emergence."""
    _, v = sizes
    for metric in ("acc", "target_logprob"):
        assert v[("lambada_openai", "0-shot", metric)].label == "smooth", why(v[("lambada_openai", "0-shot", metric)])


def test_mmlu_subjects_stay_flat_at_chance(sizes):
    """Published record: every MMLU subject stays near chance (0.25) at every Pythia size.

    Asserted, for `acc` and `acc_norm` of the 57 subjects: chance is 0.25; no
    subject is emergent with a clear call; at most 3 of 57 (5%, the rate of false
    calls expected from 95% intervals over 57 independent subjects) are emergent at
    all; and the rest are flat or a small smooth rise (under 0.25, i.e. never
    reaching twice chance).
    """
    curves, v = sizes
    subjects = sorted({t for (t, _, _) in curves if t.startswith("hendrycksTest-")})
    assert len(subjects) == 57
    for metric in ("acc", "acc_norm"):
        vs = [v[(t, "0-shot", metric)] for t in subjects]
        assert all(curves[(t, "0-shot", metric)].chance == 0.25 for t in subjects)
        emergent = [x for x in vs if x.label == "emergent"]
        assert len(emergent) <= 3, [why(x) for x in emergent]
        if emergent and hasattr(emergent[0], "confidence"):  # verdicts that state their confidence
            assert all(x.confidence != "clear" for x in emergent), [why(x) for x in emergent]
        for x in vs:
            if x.label != "emergent":
                assert x.label in ("flat", "smooth"), why(x)
                c = curves[(x.task, "0-shot", metric)]
                assert x.label == "flat" or max(c.y) - min(c.y) < 0.25, why(x)


def test_few_shot_addition_is_emergent_between_1_4b_and_2_8b(arithmetic):
    """Published record: few-shot addition is near zero up to 1.4B and jumps at 2.8B and above."""
    _, v = arithmetic
    below = params_of("EleutherAI/pythia-1.3b-deduped")  # the old name of Pythia-1.4B
    at = params_of("EleutherAI/pythia-2.7b-deduped")  # Pythia-2.8B
    wrong = []
    for k in (2, 4, 8, 16):
        vk = v[("num_reasoning_arithmetic_addition", f"{k}-shot", "acc")]
        t = vk.transition_scale
        if vk.label != "emergent" or t is None or not below < t <= at:
            wrong.append(f"{why(vk)}; transition at {t} ({vk.transition_model}), expected in ({below:g}, {at:g}]")
    assert not wrong, "\n".join(wrong)


def test_zero_shot_arithmetic_stays_at_the_floor_and_is_not_emergent(arithmetic):
    """Published record: zero-shot arithmetic stays at a few percent at every size: not emergence."""
    curves, v = arithmetic
    wrong = []
    for task in ("num_reasoning_arithmetic_addition", "num_reasoning_arithmetic_multiplication"):
        c, vk = curves[(task, "0-shot", "acc")], v[(task, "0-shot", "acc")]
        assert max(c.y) < 0.1  # the data: the floor
        if vk.label == "emergent":
            wrong.append(why(vk))
    assert not wrong, "\n".join(wrong)


# --------------------------------------------------------------------------- over training


def test_lambada_over_training_exact_match_late_log_probability_early(training):
    """Published record: accuracy is exactly 0 for the first checkpoints and rises late; the target's
    log-probability moves from much earlier checkpoints (the metric-driven pattern over steps)."""
    curves, v = training
    acc = curves[("lambada_openai", "0-shot", "acc")]
    assert acc.x_name == "train_step" and acc.x[0] == 1 and acc.x[-1] == 143_000 and len(acc.x) == 26
    first_nonzero = next(s for s, y in zip(acc.x, acc.y, strict=True) if y > 0)
    t_acc = v[("lambada_openai", "0-shot", "acc")].transition_scale
    t_lp = v[("lambada_openai", "0-shot", "target_logprob")].transition_scale
    assert t_acc is not None and t_lp is not None
    assert t_acc >= first_nonzero  # accuracy leaves 0 only where it is non-zero
    assert t_lp < first_nonzero, f"log-probability transition at step {t_lp:g}, accuracy's at {t_acc:g}"


# --------------------------------------------------------------------------- the command


def test_judge_command_on_the_fixture_writes_a_report_and_prints_readable_verdicts(tmp_path, capsys):
    out = tmp_path / "judged"
    assert main(["judge", str(LIT / "pythia_arithmetic"), "--params", str(PARAMS), "--out", str(out),
                 "analysis.min_effect=0.02"]) == 0
    text = capsys.readouterr().out
    assert "10 curves from 7 file(s)" in text and "per-subtask accuracy CSV, against parameters" in text
    row = next(ln for ln in text.splitlines() if "num_reasoning_arithmetic_addition" in ln and " 8-shot" in ln)
    verdict = pd.read_csv(out / "verdicts.csv").query("prompt == '8-shot' and task.str.endswith('addition')")
    assert row.split()[:4] == ["num_reasoning_arithmetic_addition", "8-shot", "acc", verdict["label"].item()]
    table = pd.read_csv(out / "verdicts.csv")
    assert len(table) == 10 and (out / "report.html").stat().st_size > 10_000
    assert main(["judge", str(LIT / "pythia_sizes"), "--params", str(PARAMS), "--x", "non_embedding_params"]) == 0
    text = capsys.readouterr().out
    assert "129 curves from 8 file(s); left out metrics: likelihood_difference, pct_stereotype" in text
    assert "against non-embedding parameters" in text
    assert main(["judge", str(LIT / "pythia_1.4b_training"), "--params", str(STEPS), "--x", "train_step"]) == 0
    assert "against training step" in capsys.readouterr().out
