"""The one-call analysis, the per-task figures and the self-contained HTML report, on synthetic curves."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from orchestrator.analysis.curves import Curve
from orchestrator.analysis.figures import plot_tasks, safe_name, task_png
from orchestrator.analysis.report import Analysis, analyse, build_report

SIZES = tuple(float(v) for v in np.logspace(6, 10, 5))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _c(task, prompt, metric, y, *, w=0.02, kind="discontinuous", hib=True, chance=None) -> Curve:
    return Curve(
        task=task,
        prompt=prompt,
        metric=metric,
        x=SIZES,
        y=tuple(float(v) for v in y),
        lo=tuple(v - w for v in y),
        hi=tuple(v + w for v in y),
        models=tuple(f"m{i}" for i in range(len(y))),
        chance=chance,
        higher_is_better=hib,
        kind=kind,
    )


@pytest.fixture()
def curves() -> list[Curve]:
    return [
        _c("add", "zero_shot", "exact_match", [0, 0, 0, 0.02, 0.6]),
        _c("add", "zero_shot", "token_edit_distance", [4, 3, 2.2, 1.6, 1.1], w=0.1, kind="continuous", hib=False),
        _c("add", "chain_of_thought", "exact_match", [0, 0, 0.3, 0.5, 0.8]),
        _c(
            "add",
            "chain_of_thought",
            "token_edit_distance",
            [4, 2.5, 1.5, 1.0, 0.6],
            w=0.1,
            kind="continuous",
            hib=False,
        ),
        _c("mc<b>", "zero_shot", "multiple_choice_grade", [0.25, 0.25, 0.26, 0.25, 0.7], chance=0.25),
        _c("mc<b>", "zero_shot", "brier_score", [0.19, 0.18, 0.17, 0.16, 0.12], w=0.005, kind="continuous", hib=False),
    ]


def test_analyse_bundles_verdicts_mirage_and_comparison(curves):
    a = analyse(curves)
    assert isinstance(a, Analysis)
    assert len(a.verdicts) == len(curves) == len(a.verdict_table)
    labels = {(v.task, v.prompt, v.metric): v.label for v in a.verdicts}
    assert labels[("add", "zero_shot", "exact_match")] == "emergent"
    assert labels[("add", "zero_shot", "token_edit_distance")] == "smooth"
    # the finding names the declared partner's verdict on its own axis, then on its power-law axis where it has one
    assert set(a.mirage["flag"]) == {
        "emergent under exact_match, smooth under token_edit_distance (smooth on its log10(distance) axis)",
        "emergent under multiple_choice_grade, smooth under brier_score",
    }
    assert a.mirage["counted"].all() and a.mirage["mirage"].all()
    vt = a.verdict_table
    assert set(vt["confidence"]) <= {"clear", "borderline"} and vt["margins"].str.len().gt(0).all()
    cot = a.comparison[(a.comparison.prompt == "chain_of_thought") & (a.comparison.metric == "exact_match")].iloc[0]
    assert cot["direction"] == "earlier"
    # chain of thought's [0, 0, .3, .5, .8] lags a steady rise by exactly the minimum delay: emergent, but borderline
    cot_v = next(v for v in a.verdicts if v.prompt == "chain_of_thought" and v.metric == "exact_match")
    assert (cot_v.label, cot_v.confidence) == ("emergent", "borderline")
    assert "3 emergent curve(s)" in a.summary and "3 (100%)" in a.summary


def _script_srcs(html: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", html, flags=re.I)


def test_report_is_self_contained_with_the_tables_and_interactive_curves(curves, tmp_path):
    a = analyse(curves)
    cells = pd.DataFrame({"cell_id": ["c1", "c2"], "model": ["m0", "m1"], "n_examples": [200, 200]})
    out = build_report(
        curves, a.verdicts, a.mirage, a.comparison, cells, tmp_path / "out" / "report.html", title="Sweep <1>"
    )
    assert out == tmp_path / "out" / "report.html" and out.exists()
    html = out.read_text(encoding="utf-8")
    assert not [s for s in _script_srcs(html) if s.startswith(("http://", "https://", "//"))]
    assert 'id="verdict-table"' in html and 'id="mirage-table"' in html and 'id="compare-table"' in html
    assert "emergent under exact_match, smooth under token_edit_distance" in html
    assert "margin to each rule" in html and "declared partner" in html and "other axis" in html
    assert 'class="label emergent"' in html
    assert html.count("window.PlotlyConfig") == 1  # plotly.js inlined exactly once
    assert html.count("Plotly.newPlot") == 2  # one interactive figure per task
    assert "Sweep &lt;1&gt;" in html and "mc&lt;b&gt;" in html and "<b>mc" not in html  # escaped
    assert 'id="cells-table"' in html and "c2" in html
    assert not (tmp_path / "out" / "report.html.tmp").exists()


def test_report_falls_back_to_embedded_pngs(curves, tmp_path):
    a = analyse(curves)
    out = build_report(curves, a.verdicts, a.mirage, a.comparison, None, tmp_path / "r.html", use_plotly=False)
    html = out.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 2
    assert "Plotly.newPlot" not in html
    assert not _script_srcs(html)
    assert 'id="verdict-table"' in html and "cells-table" not in html


def test_report_writes_the_figures_when_asked(curves, tmp_path):
    a = analyse(curves)
    build_report(
        curves,
        a.verdicts,
        a.mirage,
        a.comparison,
        None,
        tmp_path / "r.html",
        use_plotly=False,
        figures_dir=tmp_path / "fig",
    )
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["add.png", "mc_b.png"]


def test_figures_one_png_per_task(curves, tmp_path):
    paths = plot_tasks(curves, tmp_path / "figs")
    assert [p.name for p in paths] == ["add.png", "mc_b.png"]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert task_png([c for c in curves if c.task == "add"]).startswith(PNG_MAGIC)
    assert safe_name("a/b c") == "a_b_c"
    with pytest.raises(ValueError):
        task_png([])


def test_empty_tables_render_as_none(tmp_path):
    c = _c("flat", "zero_shot", "exact_match", [0.3, 0.3, 0.31, 0.3, 0.3], w=0.05)
    a = analyse([c])
    assert a.mirage.empty
    html = build_report(
        [c], a.verdicts, a.mirage, a.comparison, None, tmp_path / "r.html", use_plotly=False
    ).read_text()
    assert 'id="mirage-table"' in html and "(none)" in html
    assert "No curve is emergent" in html
