"""Published scores in, verdicts out: BIG-bench results files and long CSVs (`orchestrator judge`).

The BIG-bench files here are written by the tests in the schema of BIG-bench's
`bigbench/api/results.py` (ResultsFileData: model, scores, task). Their values
are constructed, not published: per-token accuracy p rising evenly with
log-size and exact match = p^L on an L-token answer, the mechanism Schaeffer,
Miranda & Koyejo (2023) put behind emergent-looking exact-match curves.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import fsspec
import pytest

from orchestrator.analysis.external import (
    ExternalDataError,
    curves_from_bigbench,
    curves_from_csv,
    curves_from_lmeval,
    curves_from_subtask_csv,
    read_scale_table,
    wilson,
)
from orchestrator.analysis.report import analyse
from orchestrator.cli import main
from orchestrator.metrics import available
from orchestrator.scoring import metric_info

BIG_G = {  # model_name -> non_embedding_params (the 12 dense BIG-G sizes' names; counts are round numbers)
    "2m": 2e6, "16m": 1.6e7, "53m": 5.3e7, "125m": 1.25e8, "244m": 2.44e8, "422m": 4.22e8,
    "1b": 1e9, "2b": 2e9, "4b": 4e9, "8b": 8e9, "27b": 2.7e10, "128b": 1.28e11,
}
L = 12  # answer length in tokens
TASK = "modified_arithmetic:three_digit_addition_control"


def results_file(name: str, size: float, p: float, family: str = "BIG-G T=0", shots=(2,)) -> dict:
    """One BIG-bench results file: exact match p^L, log-likelihood L log p, BLEU ~ 100 p, Brier unused."""
    return {
        "model": {
            "model_family": family, "model_name": name, "total_params": int(size * 1.2),
            "non_embedding_params": int(size), "flop_matched_non_embedding_params": int(size),
            "training_batch_size": 262144, "training_steps": 500000, "description": "constructed",
            "decoding_params": {},
        },
        "scores": [
            {
                "score_dict": {
                    "exact_str_match": p**L, "log_likelihood": L * math.log(p), "bleu": 100 * p,
                    "normalized_aggregate_score": 1.0,
                },
                "preferred_score": "exact_str_match", "number_of_shots": k, "low_score": 0.0,
                "high_score": 1.0, "subtask_description": TASK,
            }
            for k in shots
        ],
        "task": {"task_name": "modified_arithmetic"},
    }


def p_at(i: int) -> float:
    return 0.30 + 0.65 * i / (len(BIG_G) - 1)


def family_files(family="BIG-G T=0", shots=(2,)) -> list[tuple[str, dict]]:
    return [
        (f"scores_{family}_{name}.json", results_file(name, size, p_at(i), family, shots))
        for i, (name, size) in enumerate(BIG_G.items())
    ]


def write_results(root: Path, files: list[tuple[str, dict]]) -> Path:
    folder = root / "modified_arithmetic" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (folder / name.replace(" ", "_")).write_text(json.dumps(data))
    (folder / "full-log_BIG-G_2m.json").write_text("{not even json")  # never read: not scores_*.json
    return root


# --------------------------------------------------------------------------- BIG-bench results files


def test_bigbench_results_become_curves_with_mapped_metrics_and_chance():
    ext = curves_from_bigbench(family_files(shots=(0, 2)))
    by = {(c.prompt, c.metric): c for c in ext.curves}
    assert set(by) == {(f"{k}-shot", m) for k in (0, 2) for m in ("exact_str_match", "log_likelihood", "bleu")}
    assert ext.skipped_metrics == ("normalized_aggregate_score",)
    em = by[("2-shot", "exact_str_match")]
    assert em.task == TASK and em.kind == "discontinuous" and em.higher_is_better
    assert em.x == tuple(sorted(BIG_G.values())) and em.models[0] == "2m" and em.models[-1] == "128b"
    assert em.y[-1] == pytest.approx(p_at(11) ** L)
    assert em.chance == 0.0 and em.best == 1.0  # the preferred metric's low_score and high_score
    lp = by[("2-shot", "log_likelihood")]
    assert lp.kind == "continuous" and lp.chance is None  # low_score belongs to the preferred metric only
    assert all(math.isnan(v) for v in em.lo + em.hi)  # results files carry no intervals
    total = curves_from_bigbench(family_files(), x="total_params").curves[0]
    assert total.x[0] == int(2e6 * 1.2)
    only0 = curves_from_bigbench(family_files(shots=(0, 2)), shots=0).curves
    assert {c.prompt for c in only0} == {"0-shot"}
    gap = family_files()
    gap[5][1]["scores"][0]["score_dict"]["bleu"] = math.nan  # json.loads reads NaN: that size drops out
    bleu = next(c for c in curves_from_bigbench(gap).curves if c.metric == "bleu")
    assert len(bleu.x) == len(BIG_G) - 1 and "422m" not in bleu.models


def test_exact_match_of_a_smooth_per_token_accuracy_is_flagged_as_a_mirage():
    """p rises evenly; p^12 sits near 0 for most sizes then climbs: emergent under EM, smooth under log p."""
    a = analyse(curves_from_bigbench(family_files()).curves)
    labels = {v.metric: v.label for v in a.verdicts}
    assert labels["exact_str_match"] == "emergent", a.verdict_table.to_string()
    assert labels["log_likelihood"] == "smooth" and labels["bleu"] == "smooth"
    rows = a.mirage.set_index("continuous_metric")
    assert bool(rows.loc["log_likelihood", "mirage"])  # the declared partner: counted
    assert not bool(rows.loc["bleu", "mirage"])  # BLEU is shown beside it, never a declared partner
    assert rows.loc["log_likelihood", "discontinuous_metric"] == "exact_str_match"
    em = next(v for v in a.verdicts if v.metric == "exact_str_match")
    assert any("no bootstrap intervals" in c for c in em.caveats)
    # the transition needs the minimum effect over chance, not any positive score
    assert em.transition_scale is not None and em.transition_scale > 1e9


def test_bigbench_results_errors_name_the_file_and_the_fix():
    mixed = family_files() + family_files(family="BIG-G sparse")
    with pytest.raises(ExternalDataError, match=r"2 model families \(BIG-G T=0, BIG-G sparse\).*--family"):
        curves_from_bigbench(mixed)
    assert len(curves_from_bigbench(mixed, family="BIG-G sparse").curves) == 3
    with pytest.raises(ExternalDataError, match="family 'GPT' is not in the results"):
        curves_from_bigbench(mixed, family="GPT")
    twice = family_files() + family_files()[:1]
    with pytest.raises(ExternalDataError, match="a second score for .* at non_embedding_params=2e\\+06"):
        curves_from_bigbench(twice)
    bad = family_files()
    bad[3][1]["model"]["non_embedding_params"] = "125m"
    with pytest.raises(ExternalDataError, match=r"T=0_125m.json: model.non_embedding_params must be a finite number"):
        curves_from_bigbench(bad)
    bad = family_files()
    bad[0][1]["scores"][0]["score_dict"]["exact_str_match"] = "0.1"
    with pytest.raises(ExternalDataError, match=r"score_dict.exact_str_match must be a number"):
        curves_from_bigbench(bad)
    with pytest.raises(ExternalDataError, match="not a BIG-bench results file"):
        curves_from_bigbench([("x.json", {"scores": []})])
    with pytest.raises(ExternalDataError, match="no BIG-bench results files"):
        curves_from_bigbench([])
    with pytest.raises(ExternalDataError, match="x='params'"):
        curves_from_bigbench(family_files(), x="params")


# --------------------------------------------------------------------------- long CSV

CSV = """\
# constructed rows in the literature-fixture format
task,prompt,model,params,metric,kind,higher_is_better,mean,lo,hi,chance,read_precision
arith,few_shot,s,1e8,exact_match,,,0.00,,,0,0.01
arith,few_shot,m,1e9,exact_match,,,0.01,,,0,0.01
arith,few_shot,l,1e10,exact_match,,,0.02,,,0,0.01
arith,few_shot,xl,1e11,exact_match,,,0.60,,,0,0.01
arith,few_shot,s,1e8,partial_credit,continuous,true,0.20,0.18,0.22,,
arith,few_shot,m,1e9,partial_credit,continuous,true,0.40,0.38,0.42,,
arith,few_shot,l,1e10,partial_credit,continuous,true,0.60,0.58,0.62,,
arith,few_shot,xl,1e11,partial_credit,continuous,true,0.80,0.78,0.82,,
"""


def test_csv_rows_become_curves_with_figure_reading_intervals():
    ext = curves_from_csv(CSV, "pub.csv", metric_info(available()), {"exact_match": 1.0})
    by = {c.metric: c for c in ext.curves}
    em = by["exact_match"]
    assert em.kind == "discontinuous" and em.higher_is_better  # from this project's registry
    assert em.lo == pytest.approx((-0.01, 0.0, 0.01, 0.59)) and em.hi == pytest.approx((0.01, 0.02, 0.03, 0.61))
    assert em.chance == 0.0 and em.models == ("s", "m", "l", "xl")
    assert em.best == 1.0  # exact_match's perfect score, from the registry
    pc = by["partial_credit"]
    assert pc.kind == "continuous" and pc.lo == (0.18, 0.38, 0.58, 0.78) and pc.best is None
    a = analyse(ext.curves)
    assert {v.metric: v.label for v in a.verdicts} == {"exact_match": "emergent", "partial_credit": "smooth"}
    assert a.mirage["flag"].tolist() == [  # a published table's own metric is shown, never counted as a mirage
        "emergent under exact_match, smooth under partial_credit; partial_credit is not a declared partner of "
        "exact_match: shown, not counted"
    ]
    alone = analyse([em])  # nothing to check it against: the summary says so instead of "nothing emergent"
    assert alone.mirage.empty and alone.summary.startswith("1 emergent curve(s) under a discontinuous metric")
    assert "cannot be checked" in alone.summary and "arith/few_shot/exact_match" in alone.summary


@pytest.mark.parametrize(
    "text, message",
    [
        ("task,prompt,model,metric,mean\nt,p,m,exact_match,0.1\n", "missing column.*params"),
        ("task,prompt,model,params,metric,mean\nt,p,m,1e9,mystery,0.1\n", r"pub.csv:2: metric 'mystery'.*'kind'"),
        ("task,prompt,model,params,metric,mean\nt,p,m,big,exact_match,0.1\n", r"pub.csv:2: params='big'"),
        ("task,prompt,model,params,metric,mean,lo\nt,p,m,1e9,exact_match,0.1,low\n", r"lo='low' is not a number"),
        ("task,prompt,model,params,metric,mean,kind\nt,p,m,1e9,x,0.1,jumpy\n", r"kind='jumpy'"),
        ("task,prompt,model,params,metric,mean\nt,p,m,1e9,exact_match,0.1\nt,p,n,1e9,exact_match,0.2\n",
         "two rows for t / p / exact_match at params=1e"),
    ],
)
def test_csv_errors_name_the_line_or_column(text, message):
    with pytest.raises(ExternalDataError, match=message):
        curves_from_csv(text, "pub.csv", metric_info(available()))


# --------------------------------------------------------------------------- the command


def test_judge_command_reads_a_bigbench_folder_and_writes_a_report(tmp_path, capsys):
    root = write_results(tmp_path / "bb", family_files())
    out = tmp_path / "judged"
    assert main(["judge", str(root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 curves from 12 file(s); left out metrics: normalized_aggregate_score" in text
    assert "emergent under exact_str_match, smooth under log_likelihood" in text
    assert (out / "report.html").stat().st_size > 10_000
    assert "mirage" in (out / "mirage.csv").read_text()


def test_judge_command_reads_any_fsspec_url_and_a_csv(tmp_path, capsys):
    fs = fsspec.filesystem("memory")
    try:
        for name, data in family_files():
            with fs.open(f"/judge-test/modified_arithmetic/results/{name}", "w") as f:
                f.write(json.dumps(data))
        assert main(["judge", "memory://judge-test"]) == 0
        assert "emergent under exact_str_match" in capsys.readouterr().out
    finally:
        fs.rm("/judge-test", recursive=True)
    csv = tmp_path / "pub.csv"
    csv.write_text(CSV)
    assert main(["judge", str(csv)]) == 0
    assert "emergent under exact_match, smooth under partial_credit" in capsys.readouterr().out


def test_judge_command_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    root = write_results(tmp_path / "bb", family_files() + family_files(family="BIG-G sparse"))
    out = tmp_path / "judged"
    assert main(["judge", str(root), "--out", str(out)]) == 2
    assert "--family" in capsys.readouterr().err and not out.exists()
    assert main(["judge", str(tmp_path / "nothing-here")]) == 2
    assert "nothing-here: no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["judge", str(tmp_path / "empty")]) == 2
    assert "no BIG-bench results files" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("task,prompt\n")
    assert main(["judge", str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    assert "missing column" in capsys.readouterr().err and not out.exists()


def test_judge_finds_files_in_the_folder_itself_and_takes_glob_characters_literally(tmp_path, capsys):
    folder = tmp_path / "run [v2]*"
    folder.mkdir()
    for name, data in family_files():
        (folder / name.replace(" ", "_")).write_text(json.dumps(data))
    (folder / "scores_old.json").mkdir()  # a folder with a matching name is not a file to read
    assert main(["judge", str(folder)]) == 0
    assert "3 curves from 12 file(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "scores_x.json").write_bytes(b"\xff\xfe{}"), "not UTF-8"),
        (lambda d: (d / "scores_x.json").write_text("{"), "not valid JSON"),
        (lambda d: (d / "scores_x.json").write_text(json.dumps({"model": {"model_family": 3}, "scores": []})),
         "model.model_family must be a non-empty string"),
    ],
)
def test_judge_bad_files_exit_2_with_the_reason(tmp_path, capsys, make, message):
    make(tmp_path)
    assert main(["judge", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_judge_bad_locations_and_out_exit_2(tmp_path, capsys):
    assert main(["judge", "nosuchprotocol://x"]) == 2
    assert "cannot read it" in capsys.readouterr().err
    root = write_results(tmp_path / "bb", family_files())
    (tmp_path / "taken").write_text("a file")
    assert main(["judge", str(root), "--out", str(tmp_path / "taken")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["judge", str(root), "--shots", "5"]) == 2
    assert "no scores left (--family None, --shots 5)" in capsys.readouterr().err


def test_bigbench_values_that_are_not_scores_are_refused():
    for field, value, message in (
        ("non_embedding_params", 0, "must be > 0"),
        ("model_family", "", "model_family must be a non-empty string"),
    ):
        bad = family_files()
        bad[0][1]["model"][field] = value
        with pytest.raises(ExternalDataError, match=message):
            curves_from_bigbench(bad)
    for field, value, message in (
        ("number_of_shots", 2.5, "must be a whole number"),
        ("low_score", "abc", "low_score must be a finite number"),
    ):
        bad = family_files()
        bad[0][1]["scores"][0][field] = value
        with pytest.raises(ExternalDataError, match=message):
            curves_from_bigbench(bad)
    bad = family_files()
    bad[0][1]["scores"][0]["score_dict"]["bleu"] = math.inf
    with pytest.raises(ExternalDataError, match="score_dict.bleu is inf"):
        curves_from_bigbench(bad)


def test_bleu_on_bigbench_0_100_scale_becomes_a_fraction():
    bleu = next(c for c in curves_from_bigbench(family_files()).curves if c.metric == "bleu")
    assert bleu.y[0] == pytest.approx(p_at(0)) and max(bleu.y) <= 1.0


def test_csv_line_numbers_count_comments_and_rows_must_agree(tmp_path):
    text = (
        "# source: a table\n\ntask,prompt,model,params,metric,mean\n"
        "t,p,m,1e9,exact_match,0.1\nt,p,n,x,exact_match,0.2\n"
    )
    with pytest.raises(ExternalDataError, match=r"pub.csv:5: params='x'"):  # line 5 of the file
        curves_from_csv(text, "pub.csv", metric_info(available()))
    with pytest.raises(ExternalDataError, match=r"pub.csv:3: prompt is empty"):
        curves_from_csv("task,prompt,model,params,metric,mean\nt,p,m,1e8,exact_match,0\nt,,m,1e9,exact_match,0.1\n",
                        "pub.csv", metric_info(available()))
    mixed = ("task,prompt,model,params,metric,mean,kind,higher_is_better\n"
             "t,p,m,1e8,q,0,continuous,true\nt,p,n,1e9,q,0.1,continuous,false\n")
    with pytest.raises(ExternalDataError, match=r"higher_is_better differs between the rows of q: false, true"):
        curves_from_csv(mixed, "pub.csv", metric_info(available()))
    ones = mixed.replace("true", "1").replace("false", "1")
    assert curves_from_csv(ones, "pub.csv", metric_info(available())).curves[0].higher_is_better is True
    with pytest.raises(ExternalDataError, match=r"mean='inf' is not a finite number"):
        curves_from_csv("task,prompt,model,params,metric,mean\nt,p,m,1e8,exact_match,inf\n", "pub.csv",
                        metric_info(available()))


# --------------------------------------------------------------------------- lm-evaluation-harness results files
#
# Constructed in the schema lm-eval v0.4 writes (lm_eval/evaluator.py `results_dict`, the tracker's
# model_name, lm_eval/result_schema.py): "metric,filter" keys, "N/A" stderrs, configs, n-shot,
# higher_is_better, n-samples. Values are made up; the real older-format files are tests/fixtures/literature.

LM_SIZES = {"pythia-70m": 7e7, "pythia-410m": 4.1e8, "pythia-1.4b": 1.4e9, "pythia-6.9b": 6.9e9}
LM_TABLE = "model,params,non_embedding_params\n" + "".join(
    f"EleutherAI/{m},{p:.0f},{p / 2:.0f}\n" for m, p in LM_SIZES.items())


def lmeval_file(model: str, i: int, model_args_dict: bool = False) -> dict:
    """One v0.4 results file: MMLU astronomy near chance, LAMBADA improving, gsm8k at 0 under one filter."""
    args = f"pretrained=EleutherAI/{model},revision=main,dtype=float"
    return {
        "results": {
            "mmlu_astronomy": {"alias": "  - astronomy", "acc,none": 0.25 + 0.01 * i, "acc_stderr,none": 0.035},
            "lambada_openai": {
                "alias": "lambada_openai", "perplexity,none": 40.0 / (i + 1), "perplexity_stderr,none": 0.5,
                "acc,none": 0.3 + 0.1 * i, "acc_stderr,none": 0.0065,
            },
            "gsm8k": {
                "alias": "gsm8k", "exact_match,strict-match": 0.0, "exact_match_stderr,strict-match": 0.0,
                "exact_match,flexible-extract": 0.01 * i, "exact_match_stderr,flexible-extract": "N/A",
            },
        },
        "group_subtasks": {"mmlu_astronomy": [], "lambada_openai": [], "gsm8k": []},
        "configs": {
            "mmlu_astronomy": {"task": "mmlu_astronomy", "output_type": "multiple_choice",
                               "doc_to_choice": ["A", "B", "C", "D"]},
            "lambada_openai": {"task": "lambada_openai", "output_type": "loglikelihood"},
            "gsm8k": {"task": "gsm8k", "output_type": "generate_until"},
        },
        "versions": {"mmlu_astronomy": 1.0, "lambada_openai": 1.0, "gsm8k": 3.0},
        "n-shot": {"mmlu_astronomy": 0, "lambada_openai": 0, "gsm8k": 5},
        "higher_is_better": {"mmlu_astronomy": {"acc": True}, "lambada_openai": {"perplexity": False, "acc": True},
                             "gsm8k": {"exact_match": True}},
        "n-samples": {"mmlu_astronomy": {"original": 152, "effective": 152},
                      "lambada_openai": {"original": 5153, "effective": 5153},
                      "gsm8k": {"original": 1319, "effective": 100}},
        "config": {"model": "hf", "model_args": dict(p.split("=") for p in args.split(",")) if model_args_dict
                   else args, "batch_size": 8, "limit": None},
        "git_hash": "0000000", "date": 1700000000.0,
        "model_source": "hf", "model_name": f"EleutherAI/{model}", "model_name_sanitized": f"EleutherAI__{model}",
    }


def lmeval_files(model_args_dict: bool = False) -> list[tuple[str, dict]]:
    return [(f"out/EleutherAI__{m}/results_2024-01-0{i + 1}T00-00-00.json", lmeval_file(m, i, model_args_dict))
            for i, m in enumerate(LM_SIZES)]


def write_lmeval(root: Path, files: list[tuple[str, dict]]) -> Path:
    for name, d in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(d))
    (root / "sizes.csv").write_text(LM_TABLE)
    return root


@pytest.mark.parametrize("as_dict", [False, True])
def test_lmeval_current_format_becomes_curves_with_chance_n_and_log_probability(as_dict):
    ext = curves_from_lmeval(lmeval_files(as_dict), read_scale_table(LM_TABLE, "sizes.csv"))
    by = {(c.task, c.prompt, c.metric): c for c in ext.curves}
    assert set(by) == {
        ("mmlu_astronomy", "0-shot", "acc"), ("lambada_openai", "0-shot", "acc"),
        ("lambada_openai", "0-shot", "perplexity"), ("lambada_openai", "0-shot", "target_logprob"),
        ("gsm8k", "5-shot", "exact_match,strict-match"), ("gsm8k", "5-shot", "exact_match,flexible-extract"),
    }
    mmlu = by[("mmlu_astronomy", "0-shot", "acc")]
    assert mmlu.x == tuple(LM_SIZES.values()) and mmlu.models[0] == "pythia-70m@main"
    assert mmlu.chance == 0.25 and mmlu.kind == "discontinuous" and mmlu.meta["n"] == (152,) * 4
    assert (mmlu.lo[0], mmlu.hi[0]) == pytest.approx(wilson(0.25, 152))
    ppl, lp = by[("lambada_openai", "0-shot", "perplexity")], by[("lambada_openai", "0-shot", "target_logprob")]
    assert not ppl.higher_is_better and lp.higher_is_better and lp.kind == "continuous"
    assert lp.y == pytest.approx([-math.log(40.0 / (i + 1)) for i in range(4)])
    assert lp.hi[0] - lp.y[0] == pytest.approx(1.959964 * 0.5 / 40.0, rel=1e-5)  # delta method on ln(ppl)
    strict = by[("gsm8k", "5-shot", "exact_match,strict-match")]
    assert strict.y == (0.0,) * 4 and strict.lo[0] == 0.0 and strict.hi[0] == pytest.approx(wilson(0.0, 100)[1])
    assert strict.hi[0] > 0.03  # 0 of 100 (--limit 100) is no claim of perfect precision
    assert by[("lambada_openai", "0-shot", "acc")].chance is None  # no option list: chance unknown


def test_lmeval_older_format_infers_n_from_the_stderr_and_never_claims_zero_width():
    """The Pythia files: MMLU astronomy has 152 questions (se^2 = p(1-p)/(n-1)); a 0/1 point gets a real interval."""
    lit = Path(__file__).parent / "fixtures" / "literature"
    table = read_scale_table((lit / "pythia_params.csv").read_text(), "pythia_params.csv")
    files = [(str(p), json.loads(p.read_text())) for p in sorted((lit / "pythia_sizes").glob("*.json"))]
    by = {(c.task, c.metric): c for c in curves_from_lmeval(files, table, x="non_embedding_params").curves}
    astro = by[("hendrycksTest-astronomy", "acc")]
    assert astro.meta["n"] == (152,) * 8 and astro.chance == 0.25 and astro.x[0] == 18_915_328
    assert by[("lambada_openai", "acc")].meta["n"] == (5153,) * 8
    assert by[("piqa", "acc")].chance == 0.5 and by[("arc_easy", "acc")].chance is None  # ARC: 3-5 options
    one = json.loads((lit / "pythia_1.4b_training" / "1.4b-deduped_step1.json").read_text())
    steps = read_scale_table((lit / "pythia_1.4b_steps.csv").read_text(), "steps.csv")
    alone = {c.metric: c for c in curves_from_lmeval([("step1.json", one)], steps, x="train_step").curves
             if c.task == "lambada_openai"}
    assert alone["acc"].y == (0.0,) and math.isnan(alone["acc"].lo[0])  # acc 0, stderr 0, n unknown: no interval
    assert alone["acc"].x == (1.0,)


def test_scale_tables_in_csv_and_yaml_match_files_by_name_model_and_revision():
    yaml_map = "EleutherAI/pythia-70m: {params: 70_426_624}\npythia-410m: {params: '405,334,016'}\n"
    rows = read_scale_table(yaml_map, "t.yaml")
    assert [r.values["params"] for r in rows] == [70426624.0, 405334016.0]
    listed = read_scale_table("- {model: a, revision: step1, train_step: 1}\n- {model: a, train_step: 9}\n", "t.yml")
    assert listed[0].revision == "step1" and listed[1].revision is None
    csv_rows = read_scale_table("# sizes\nmodel,revision,train_step\nx,step8,8\nx,,99\n", "t.csv")
    assert csv_rows[0].where == "t.csv:3"
    d = lmeval_file("pythia-70m", 0)
    d["config"]["model_args"] = "pretrained=x,revision=step8"
    # a row naming the revision wins over the model's revision-less row
    assert curves_from_lmeval([("r.json", d)], csv_rows, x="train_step").curves[0].x == (8.0,)
    d["config"]["model_args"] = "pretrained=x,revision=step7"
    assert curves_from_lmeval([("r.json", d)], csv_rows, x="train_step").curves[0].x == (99.0,)
    by_file = read_scale_table("model,params\nmy_run_results,5e8\n", "t.csv")  # matched on the file name
    assert curves_from_lmeval([("dir/my_run_results.json", d)], by_file).curves[0].x == (5e8,)


@pytest.mark.parametrize(
    ("table", "name", "message"),
    [
        ("model,params\nEleutherAI/pythia-70m,7e7\n", "t.csv", r"results_2024-01-02.*no row of t.csv matches it; "
         r"add a row whose model is one of .*'EleutherAI/pythia-410m', 'pythia-410m'"),
        (LM_TABLE + "pythia-70m,1e8,5e7\n", "t.csv", r"2 rows of t.csv match it \(t.csv:2, t.csv:6\)"),
        ("model,non_embedding_params\n" + "".join(f"EleutherAI/{m},1\n" for m in LM_SIZES), "t.csv",
         r"t.csv:2: model 'EleutherAI/pythia-70m' .* has no params; add a params column"),
        ("model,params\npythia-70m,lots\n", "t.csv", r"t.csv:2: params='lots' is not a number"),
        ("model,params,size\npythia-70m,1,2\n", "t.csv", r"t.csv:2: unknown field\(s\) size"),
        ("model,params\n,7e7\n", "t.csv", r"t.csv:2: model is empty"),
        ("pythia-70m: 7e7\n", "t.yaml", r"entry 'pythia-70m' must map field names to values"),
        ("model,params\npythia-70m,-1\n", "t.csv", r"params='-1' must be a finite number > 0"),
    ],
)
def test_scale_table_errors_name_the_row_and_the_fix(table, name, message):
    with pytest.raises(ExternalDataError, match=message):
        curves_from_lmeval(lmeval_files(), read_scale_table(table, name), scale_source=name)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("results"), r"results_2024-01-01T00-00-00.json: not an lm-evaluation-harness results file"),
        (lambda d: d["results"]["gsm8k"].update({"exact_match,strict-match": "0.1"}),
         r"results_2024-01-01T00-00-00.json: results.gsm8k.exact_match,strict-match must be a number, got '0.1'"),
        (lambda d: d["results"]["mmlu_astronomy"].update({"acc_stderr,none": -1}),
         r"results.mmlu_astronomy.acc_stderr,none must be a number >= 0"),
        (lambda d: d["n-shot"].update({"gsm8k": "five"}), r"n-shot.gsm8k must be a whole number >= 0, got 'five'"),
        (lambda d: d["n-samples"]["gsm8k"].update({"effective": 0}), r"n-samples.gsm8k.effective must be a whole"),
        (lambda d: d["results"]["lambada_openai"].update({"perplexity,none": 0.0}),
         r"results.lambada_openai.perplexity,none=0.0 is not a perplexity"),
        (lambda d: d["config"].update({"model_args": 3}), r"config.model_args must be a string or an object"),
    ],
)
def test_lmeval_bad_fields_are_refused_naming_file_and_field(edit, message):
    files = lmeval_files()
    edit(files[0][1])
    with pytest.raises(ExternalDataError, match=message):
        curves_from_lmeval(files, read_scale_table(LM_TABLE, "sizes.csv"))


def test_lmeval_two_files_at_one_scale_are_refused_with_the_hint():
    files = lmeval_files()
    files[1][1]["model_name"] = files[1][1]["config"]["model_args"] = "pretrained=EleutherAI/pythia-70m"
    with pytest.raises(ExternalDataError, match=r"a second score for .* at params=7e\+07 .*--x train_step"):
        curves_from_lmeval(files, read_scale_table(LM_TABLE, "sizes.csv"))


def test_judge_reads_lmeval_output_folders_with_a_scale_table_and_analysis_overrides(tmp_path, capsys):
    root = write_lmeval(tmp_path, lmeval_files())
    out = tmp_path / "judged"
    assert main(["judge", str(root / "out"), "--params", str(root / "sizes.csv"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6 curves from 4 file(s)" in text and "lm-evaluation-harness results, against parameters" in text
    assert (out / "report.html").exists() and "target_logprob" in (out / "verdicts.csv").read_text()
    # the same analysis overrides as `report`: a minimum effect of 100 leaves no change to call
    assert main(["judge", str(root / "out"), "--params", str(root / "sizes.csv"), "analysis.min_effect=100",
                 "analysis.min_effect_log10=100", "--x", "non_embedding_params"]) == 0
    text = capsys.readouterr().out
    assert "against non-embedding parameters" in text
    rows = [ln.split() for ln in text.splitlines() if ln.strip().startswith(("lambada_openai", "mmlu_astronomy"))]
    assert rows and all(r[3] == "flat" for r in rows)
    assert main(["judge", str(root / "out"), "--params", str(root / "sizes.csv"), "--chance", "mmlu_*=0.2",
                 "--shots", "0"]) == 0
    assert "gsm8k" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], r"carry no model sizes: give --params TABLE"),
        (["--params", "SIZES", "analysis.nope=1"], r"analysis override: .*nope"),
        (["--params", "SIZES", "analysis.min_effect=abc"], r"analysis override: .*min_effect"),
        (["--params", "SIZES", "min_effect=0.1"], r"'min_effect=0.1': judge takes analysis settings as key=value"),
        (["--params", "SIZES", "--x", "params", "analysis.x=train_step"], r"--x params and analysis.x=train_step"),
        (["--params", "SIZES", "--chance", "mmlu"], r"--chance 'mmlu': give TASK=VALUE"),
        (["--params", "SIZES", "--chance", "mmlu=2"], r"VALUE in \[0, 1\]"),
        (["--params", "NOWHERE"], r"--params .*nowhere.csv: no such file or folder"),
        (["--params", "SIZES", "--x", "train_step"], r"has no train_step; add a train_step column"),
    ],
)
def test_judge_lmeval_bad_input_exits_2_with_the_reason(tmp_path, capsys, args, message):
    root = write_lmeval(tmp_path, lmeval_files())
    args = [str(root / "sizes.csv") if a == "SIZES" else str(root / "nowhere.csv") if a == "NOWHERE" else a
            for a in args]
    assert main(["judge", str(root / "out"), *args, "--out", str(tmp_path / "judged")]) == 2
    assert re.search(message, capsys.readouterr().err, re.S)
    assert not (tmp_path / "judged").exists()


def test_judge_refuses_a_folder_that_mixes_formats_or_holds_other_json(tmp_path, capsys):
    root = write_lmeval(tmp_path, lmeval_files())
    (root / "out" / "task.json").write_text(json.dumps({"name": "a BIG-bench task file"}))
    assert main(["judge", str(root / "out"), "--params", str(root / "sizes.csv")]) == 2
    assert "task.json: neither a BIG-bench results file" in capsys.readouterr().err


# --------------------------------------------------------------------------- per-subtask accuracy CSV

SUBTASK_CSV = "model,checkpoint,task,fewshot,acc,acc_stderr\n"


def subtask_rows(model: str, step: int, accs: list[float], k: int = 2, n: int = 50) -> str:
    """Rows as in the Pythia repository's term-frequency CSVs: one per subtask, lm-eval's stderr over n examples."""
    return "".join(f"{model},{step},add_{i},{k},{a},{math.sqrt(a * (1 - a) / (n - 1))}\n" for i, a in enumerate(accs))


def test_subtask_csv_averages_subtasks_at_the_final_checkpoint_with_a_pooled_interval():
    small = SUBTASK_CSV + subtask_rows("org/s", 10, [0.5, 0.5]) + subtask_rows("org/s", 20, [0.0, 0.02])
    large = SUBTASK_CSV + subtask_rows("org/l", 20, [0.4, 0.6]) + subtask_rows("org/l", 10, [0.1, 0.1])
    table = read_scale_table("model,params\norg/s,1e8\nl,1e9\n", "t.csv")
    ext = curves_from_subtask_csv([("s.csv", small), ("l.csv", large)], table)
    (c,) = ext.curves
    assert (c.task, c.prompt, c.metric, c.kind) == ("add", "2-shot", "acc", "discontinuous")
    assert c.x == (1e8, 1e9) and c.y == pytest.approx((0.01, 0.5))  # each model's last checkpoint (20)
    assert c.meta["subtasks"] == 2 and c.meta["n"] == 100  # 50 examples per subtask, from the stderrs
    assert (c.lo[0], c.hi[0]) == pytest.approx(wilson(0.01, 100))
    over = curves_from_subtask_csv([("s.csv", small)], None, x="train_step").curves[0]
    assert over.x == (10.0, 20.0) and over.y == pytest.approx((0.5, 0.01)) and over.x_name == "train_step"
    with pytest.raises(ExternalDataError, match=r"--x train_step reads the checkpoints of one model"):
        curves_from_subtask_csv([("s.csv", small), ("l.csv", large)], None, x="train_step")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model,task,acc\nm,a,1\n", r"s.csv: missing column\(s\) checkpoint, fewshot, acc_stderr"),
        (SUBTASK_CSV + "m,10,add_0,2,1.5,0\n", r"s.csv:2: acc=1.5 is not an accuracy"),
        (SUBTASK_CSV + "m,10,add_0,2,0.5,x\n", r"s.csv:2: acc_stderr='x' is not a number"),
        (SUBTASK_CSV + "m,10,add_0,2.5,0.5,0.1\n", r"s.csv:2: fewshot='2.5' must be a whole number"),
        (SUBTASK_CSV + "m,10,add_0,2,0.5,0.1\nm,10,add_0,2,0.4,0.1\n", r"s.csv:3: a second row for m .* line 2"),
        (SUBTASK_CSV + "m,10,add_0,2,0.5,0.1\nn,10,add_1,2,0.4,0.1\n", r"subtasks of add .* not one curve"),
        (SUBTASK_CSV + "q,10,add_0,2,0.5,0.1\n", r"no row of t.csv matches it"),
    ],
)
def test_subtask_csv_errors_name_the_file_line_and_field(text, message):
    table = read_scale_table("model,params\nm,1e8\nn,1e9\n", "t.csv")
    with pytest.raises(ExternalDataError, match=message):
        curves_from_subtask_csv([("s.csv", text)], table, scale_source="t.csv")


def test_judge_reads_gzipped_subtask_csvs_and_a_long_csv_over_training_steps(tmp_path, capsys):
    import gzip

    folder = tmp_path / "csvs"
    folder.mkdir()
    for m, accs in (("org/s", [0.0, 0.0]), ("org/m", [0.0, 0.02]), ("org/l", [0.5, 0.7])):
        (folder / f"{m[4:]}.csv.gz").write_bytes(gzip.compress((SUBTASK_CSV + subtask_rows(m, 5, accs)).encode()))
    (tmp_path / "t.yaml").write_text("org/s: {params: 1e8}\norg/m: {params: 1e9}\norg/l: {params: 1e10}\n")
    assert main(["judge", str(folder), "--params", str(tmp_path / "t.yaml")]) == 0
    assert "1 curves from 3 file(s)" in capsys.readouterr().out
    steps = tmp_path / "steps.csv"
    steps.write_text(CSV.replace("params", "train_step"))
    assert main(["judge", str(steps), "--x", "train_step"]) == 0
    assert "against training step" in capsys.readouterr().out
    assert main(["judge", str(steps)]) == 2
    assert "missing column(s) params" in capsys.readouterr().err
    assert curves_from_csv(CSV.replace("params", "train_flops"), "f.csv", metric_info(available()),
                           x="train_flops").curves[0].x_name == "train_flops"
