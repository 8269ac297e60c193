"""Partial results said out loud: a cell with a missing or failed shard is named in the verdicts, the report,
the terminal, cells.csv and MLflow, with the command that resumes it; `orchestrator resume` completes it."""

from __future__ import annotations

import hashlib
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.partial import PartialCell, incomplete_cells, resume_command
from orchestrator.analysis.report import analyse, build_report
from orchestrator.analysis.verdicts import judge, judge_all
from orchestrator.cli import main
from tests.conftest import overrides_for

SIZES = tuple(float(v) for v in np.logspace(6, 10, 5))


def _curve(y, task="add", prompt="zero_shot", metric="exact_match") -> Curve:
    y = tuple(float(v) for v in y)
    return Curve(task=task, prompt=prompt, metric=metric, x=SIZES, y=y, lo=tuple(v - 0.02 for v in y),
                 hi=tuple(v + 0.02 for v in y), models=tuple(f"m{i}" for i in range(len(y))), kind="discontinuous",
                 chance=0.0, best=1.0)


def _missing(task="add", prompt="zero_shot", model="m5") -> PartialCell:
    reason = f"ModelUnavailable: {model} could not be loaded"
    return PartialCell("c-" + model, model, 10**11, task, prompt, 1, 3, reason)


EMERGENT = [0, 0, 0.01, 0.5, 0.9]  # a clear emergent curve on five sizes


def test_a_curve_missing_a_planned_size_keeps_its_label_with_a_caveat_and_at_most_borderline():
    full = judge(_curve(EMERGENT))
    assert (full.label, full.confidence, full.missing_sizes) == ("emergent", "clear", "")
    assert not any("partial" in c for c in full.caveats)

    v = judge(_curve(EMERGENT), missing=[_missing()])
    assert (v.label, v.confidence, v.missing_sizes) == ("emergent", "borderline", "m5")
    caveat = next(c for c in v.caveats if c.startswith("partial"))
    assert "m5 (100B, 1/3 shards)" in caveat and "judged on 5 size(s)" in caveat and "resume" in caveat
    # the verdict is otherwise what the sizes present say
    assert (v.reason, v.effect_size) == (full.reason, full.effect_size)


def test_judge_all_caveats_only_the_curves_of_the_partial_cells_task_and_prompt():
    curves = [_curve(EMERGENT), _curve(EMERGENT, prompt="few_shot"), _curve(EMERGENT, task="mult")]
    vs = judge_all(curves, partial=[_missing()])
    assert [v.confidence for v in vs] == ["borderline", "clear", "clear"]
    assert [v.missing_sizes for v in vs] == ["m5", "", ""]
    assert judge_all(curves) == judge_all(curves, partial=[])


def test_incomplete_cells_names_done_and_total_and_the_failed_shards_error():
    shards = {"c1": ["s1", "s2"], "c2": ["s3", "s4", "s5"], "c3": ["s6"]}

    def cell(cid, name, params):
        return SimpleNamespace(id=cid, task="add", prompt=SimpleNamespace(name="zero_shot"),
                               model=SimpleNamespace(name=name, params=params, train_step=None))

    plan = SimpleNamespace(cells=[cell("c1", "a", 10), cell("c2", "b", 100), cell("c3", "c", 1000)],
                           shards_of=lambda cid: [SimpleNamespace(id=s) for s in shards[cid]])
    out = incomplete_cells(plan, {"s1", "s2", "s3"}, {"s4": "ValueError: bad", "s5": "ValueError: bad"})
    assert [(p.cell_id, p.shards_done, p.shards_total) for p in out] == [("c2", 1, 3), ("c3", 0, 1)]
    assert out[0].reason == "2 shard(s) failed: ValueError: bad"
    assert out[1].reason is None and out[1].why.startswith("not run yet")
    assert out[0].describe() == "b (100) add/zero_shot: 1/3 shards (2 shard(s) failed: ValueError: bad)"


def test_resume_command_quotes_the_root_and_masks_credentials():
    assert resume_command("demo", "/data/my results") == "orchestrator resume demo --root '/data/my results'"
    assert "hunter2" not in resume_command("demo", "s3://user:hunter2@bucket/orch")


def test_report_opens_with_the_partial_banner_and_each_task_says_what_it_leaves_out(tmp_path):
    curves = [_curve(EMERGENT), _curve(EMERGENT, task="mult")]
    partial = [_missing()]
    a = analyse(curves, partial=partial)
    assert a.partial == partial and a.verdict_table["missing_sizes"].tolist() == ["m5", ""]
    html = build_report(curves, a.verdicts, a.mirage, a.comparison, None, tmp_path / "r.html", use_plotly=False,
                        partial=a.partial, n_cells=12, resume="orchestrator resume s --root r").read_text()
    banner = html[html.index('id="partial-banner"'):html.index('id="verdicts"')]
    assert "partial: 1 of 12 cells incomplete" in banner
    assert "m5 (100B) add/zero_shot: 1/3 shards (ModelUnavailable: m5 could not be loaded)" in banner
    assert "<code>orchestrator resume s --root r</code>" in banner
    assert html.index('id="partial-banner"') < html.index('id="verdict-table"')  # the headline, before anything
    add, mult = html.index('id="task-add"'), html.index('id="task-mult"')
    assert "Left out of these curves" in html[add:mult] and "Left out of these curves" not in html[mult:]
    assert "missing sizes" in html

    full = analyse(curves)
    clean = build_report(curves, full.verdicts, full.mirage, full.comparison, None, tmp_path / "c.html",
                         use_plotly=False).read_text()
    assert "partial-banner" not in clean and "Left out of these curves" not in clean


def _blob_model(src: Path, dst: Path) -> Path:
    """A copy of `src` whose weights are a symlink into a content-addressed blob, as in a Hugging Face cache.

    The folder's fingerprint is the blob's name, so damaging the blob's bytes (a half-written download)
    makes the model fail to load without changing the sweep's plan, and restoring them heals it.
    """
    shutil.copytree(src, dst)
    weights = dst / "model.safetensors"
    data = weights.read_bytes()
    blob = dst.parent / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(exist_ok=True)
    blob.write_bytes(data)
    weights.unlink()
    weights.symlink_to(blob)
    return blob


def test_failed_shards_are_partial_everywhere_and_the_printed_resume_command_completes_the_sweep(
        tmp_path, tiny_conf, tiny_model_b, capsys):
    import mlflow

    blob = _blob_model(tiny_model_b, tmp_path / "tiny-b-cache")
    good = blob.read_bytes()
    blob.write_bytes(b"not a safetensors file")
    conf = tiny_conf / "model" / "tiny.yaml"
    conf.write_text(conf.read_text().replace(str(tiny_model_b), str(tmp_path / "tiny-b-cache")))
    overrides = overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=12",
                              "sweep.shard_size=4", "sweep.name=part", "cluster.num_cpus=2", "cluster.max_retries=0",
                              "tracking.live_interval=0")

    assert main(["run", "-q", *overrides]) == 1
    out, err = capsys.readouterr()
    assert "partial: 1 of 2 cells incomplete" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("tiny-b"))
    assert "add_2/zero_shot: 0/3 shards" in line and "3 shard(s) failed" in line and "tiny-b" in line
    assert "could not be loaded" in line, line
    resume = next(ln for ln in out.splitlines() if ln.startswith("resume ")).split(": ", 1)[1]
    assert resume == f"orchestrator resume part --root {tmp_path / 'store'}"

    outputs = tmp_path / "outputs" / "part"
    html = (outputs / "report.html").read_text()
    assert 'id="partial-banner"' in html and "partial: 1 of 2 cells incomplete" in html and resume in html
    verdicts = pd.read_csv(outputs / "verdicts.csv")
    assert not verdicts.empty and set(verdicts["missing_sizes"]) == {"tiny-b"}
    assert set(verdicts["confidence"]) == {"borderline"} and verdicts["caveats"].str.contains("tiny-b").all()
    cells = pd.read_csv(tmp_path / "store" / "part" / "cells.csv")
    b = cells.set_index("model").loc["tiny-b"]
    assert b["shards"] == "0/3" and "could not be loaded" in b["partial"]
    assert cells.set_index("model").loc["tiny-a", "shards"] == "complete"

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["part"])
    parent = runs[runs["tags.orchestrator.kind"] == "sweep"]
    assert parent["tags.orchestrator.partial"].tolist() == ["1/2 cells incomplete"]
    cell_runs = runs[runs["tags.orchestrator.kind"] == "cell"].set_index("params.size")
    assert cell_runs.loc["tiny-b", "tags.orchestrator.partial"] == "0/3 shards"  # the live view's tag

    blob.write_bytes(good)  # the download completes
    assert main([*shlex.split(resume)[1:], "-q"]) == 0
    out, err = capsys.readouterr()
    assert "partial:" not in out and "orchestrator resume" not in out
    assert "shards: 3 run, 3 already in the store, 0 failed" in out  # tiny-a's shards were not recomputed
    assert "partial-banner" not in (outputs / "report.html").read_text()
    assert pd.read_csv(outputs / "verdicts.csv")["missing_sizes"].isna().all()
    cells = pd.read_csv(tmp_path / "store" / "part" / "cells.csv")
    assert sorted(cells["model"]) == ["tiny-a", "tiny-b"] and "partial" not in cells

    runs = mlflow.search_runs(experiment_names=["part"])
    by_kind = {k: g for k, g in runs.groupby("tags.orchestrator.kind")}
    assert len(by_kind["sweep"]) == 1 and by_kind["sweep"]["status"].tolist() == ["FINISHED"]
    assert _untagged(by_kind["sweep"])
    assert sorted(by_kind["cell"]["params.size"]) == ["tiny-a", "tiny-b"]  # one run per cell, the same ones
    assert (by_kind["cell"]["status"] == "FINISHED").all()
    assert _untagged(by_kind["cell"])


def _untagged(runs: pd.DataFrame) -> bool:
    """No run carries the partial tag (MLflow leaves out the column when no run in the search has it)."""
    return "tags.orchestrator.partial" not in runs or runs["tags.orchestrator.partial"].isna().all()
