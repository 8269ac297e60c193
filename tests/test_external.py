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
from pathlib import Path

import fsspec
import pytest

from orchestrator.analysis.external import ExternalDataError, curves_from_bigbench, curves_from_csv
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
    assert bool(rows.loc["log_likelihood", "mirage"]) and bool(rows.loc["bleu", "mirage"])
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
    assert a.mirage["flag"].tolist() == ["emergent under exact_match, smooth under partial_credit"]
    alone = analyse([em])  # nothing to check it against: the summary says so instead of "nothing emergent"
    assert alone.mirage.empty and alone.summary.startswith("1 curve(s) are emergent (arith/few_shot/exact_match)")


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
