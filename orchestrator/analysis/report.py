"""The sweep's analysis in one call, and its report as one self-contained HTML file.

`analyse` judges every curve (verdicts.py), builds the mirage table
(mirage.py) and the prompt-style comparison (compare.py). `build_report`
writes an HTML file that opens without a server or a network: the verdict
and mirage tables first (the answer to "is it emergent, or is it the metric?"),
the prompt comparison, then per task the curves, interactive with plotly
(plotly.js inlined once) or, where plotly is missing, as PNGs embedded in
base64. A sweep with incomplete cells (analysis/partial.py) opens with a
banner naming them and the command that resumes it, and each task's curves
say which sizes they leave out.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.analysis.compare import compare_prompts
from orchestrator.analysis.curves import Curve
from orchestrator.analysis.mirage import mirage_table
from orchestrator.analysis.mirage import summary as mirage_summary
from orchestrator.analysis.partial import PartialCell, headline
from orchestrator.analysis.verdicts import Verdict, format_params, judge_all, verdict_table
from orchestrator.config import AnalysisConfig


@dataclass
class Analysis:
    """Everything the report shows, as plain data: verdicts, their table, the mirage table, the prompt comparison."""

    verdicts: list[Verdict]
    verdict_table: pd.DataFrame
    mirage: pd.DataFrame
    comparison: pd.DataFrame
    summary: str
    partial: list[PartialCell] = field(default_factory=list)  # the sweep's incomplete cells, left off the curves


def analyse(
    curves: Sequence[Curve], cfg: AnalysisConfig | None = None, partial: Sequence[PartialCell] = ()
) -> Analysis:
    """Judge every curve and build the mirage table and the prompt-style comparison.

    `partial` are the sweep's incomplete cells: the verdicts of curves that lack one of them say so.
    """
    cfg = cfg or AnalysisConfig()
    verdicts = judge_all(curves, cfg, partial)
    mirage = mirage_table(curves, verdicts, cfg.partners)
    return Analysis(
        verdicts=verdicts,
        verdict_table=verdict_table(verdicts),
        mirage=mirage,
        comparison=compare_prompts(curves, verdicts, reference=cfg.reference_prompt, min_effect=cfg.min_effect),
        summary=mirage_summary(mirage, verdicts),
        partial=list(partial),
    )


VERDICT_COLUMNS = [
    ("task", "task"),
    ("prompt", "prompt"),
    ("metric", "metric"),
    ("kind", "kind"),
    ("label", "verdict"),
    ("confidence", "confidence"),
    ("n_sizes", "sizes"),
    ("axis", "judged on"),
    ("alt_label", "other axis"),
    ("alt_axis", "other axis is"),
    ("effect_size", "effect (last−first)"),
    ("z_net", "z (last vs first)"),
    ("delay", "delay"),
    ("emergence_score", "emergence score"),
    ("baseline", "n−1"),
    ("emergence_ratio", "ratio"),
    ("breakthroughness", "B"),
    ("linearity", "L"),
    ("monotonicity", "Spearman ρ"),
    ("log_fit_r2", "R² vs log N"),
    ("log_fit_slope", "slope/decade"),
    ("transition_scale", "transition"),
    ("normalized_first", "normalised (smallest)"),
    ("normalized_last", "normalised (largest)"),
    ("interval_width", "CI width"),
    ("max_gap_decades", "max gap (dec)"),
    ("missing_sizes", "missing sizes"),
    ("reason", "reason"),
    ("margins", "margin to each rule"),
    ("caveats", "caveats"),
]
MIRAGE_COLUMNS = [
    ("task", "task"),
    ("prompt", "prompt"),
    ("flag", "finding"),
    ("mirage", "mirage"),
    ("discontinuous_metric", "discontinuous"),
    ("discontinuous_label", "verdict"),
    ("discontinuous_confidence", "confidence"),
    ("discontinuous_ratio", "ratio"),
    ("discontinuous_transition", "transition"),
    ("continuous_metric", "continuous"),
    ("declared", "declared partner"),
    ("counted", "counted"),
    ("continuous_label", "verdict"),
    ("continuous_confidence", "confidence"),
    ("continuous_axis", "judged on"),
    ("continuous_alt_label", "other axis"),
    ("continuous_alt_axis", "other axis is"),
    ("continuous_ratio", "ratio"),
    ("continuous_r2", "R²"),
    ("n_sizes", "sizes"),
]
COMPARE_COLUMNS = [
    ("task", "task"),
    ("metric", "metric"),
    ("prompt", "prompt"),
    ("label", "verdict"),
    ("confidence", "confidence"),
    ("transition", "transition"),
    ("reference_prompt", "reference"),
    ("shift_decades", "shift (decades)"),
    ("shift_steps", "shift (sizes)"),
    ("direction", "direction"),
]


def build_report(
    curves: Sequence[Curve],
    verdicts: Sequence[Verdict],
    mirage: pd.DataFrame,
    comparison: pd.DataFrame,
    cells_table: pd.DataFrame | None,
    out_path: Path,
    title: str = "Scaling curves and emergence",
    *,
    use_plotly: bool | None = None,
    figures_dir: Path | None = None,
    partial: Sequence[PartialCell] = (),
    n_cells: int | None = None,
    resume: str | None = None,
) -> Path:
    """Write the report to `out_path` and return it.

    `partial` (the sweep's incomplete cells, of `n_cells` planned) opens the report with a banner listing
    them and `resume`, the command that runs their missing shards; each task's curves name the sizes they
    leave out.

    `use_plotly` None means "if importable"; False embeds matplotlib PNGs.
    With `figures_dir`, the per-task PNGs (figures.plot_tasks) are also
    written there. `cells_table` (one row per cell, any columns) goes in a
    collapsed section at the end; None leaves it out.
    """
    out_path = Path(out_path)
    if use_plotly is None:
        use_plotly = _has_plotly()
    if figures_dir is not None:
        from orchestrator.analysis.figures import plot_tasks

        plot_tasks(curves, Path(figures_dir))
    vt = verdict_table(verdicts)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _partial_banner(partial, n_cells, resume),
        f'<p class="meta">{len(curves)} curves, {len({c.task for c in curves})} tasks, '
        f"{len({c.prompt for c in curves})} prompt styles; written "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}</p>",
        _READING,
        '<h2 id="verdicts">Verdicts</h2>',
        _counts(vt),
        _table(vt, VERDICT_COLUMNS, label_cols={"label"}, table_id="verdict-table"),
        '<h2 id="mirage">Mirage table: emergent under one metric, what do the others say?</h2>',
        f"<p>{_e(mirage_summary(mirage, verdicts))}</p>",
        _table(mirage, MIRAGE_COLUMNS, label_cols={"discontinuous_label", "continuous_label"}, table_id="mirage-table"),
        '<h2 id="prompts">Prompt styles: where each curve leaves baseline</h2>',
        _table(comparison, COMPARE_COLUMNS, label_cols={"label"}, table_id="compare-table"),
        '<h2 id="curves">Curves per task</h2>',
    ]
    by_task: dict[str, list[Curve]] = {}
    for c in curves:
        by_task.setdefault(c.task, []).append(c)
    first = True
    for task, group in sorted(by_task.items()):
        parts.append(f'<h3 id="task-{_e(task)}">{_e(task)}</h3>')
        left_out = [p for p in partial if p.task == task]
        if left_out:
            parts.append('<p class="partial-note">Left out of these curves (incomplete cells): '
                         + _e("; ".join(p.describe() for p in left_out)) + "</p>")
        if use_plotly:
            parts.append(_plotly_task(group, include_js=first))
        else:
            parts.append(_png_task(group))
        first = False
    if cells_table is not None:
        parts.append(f"<details><summary>Cells ({len(cells_table)})</summary>")
        parts.append(_table(cells_table, [(c, c) for c in cells_table.columns], table_id="cells-table"))
        parts.append("</details>")
    parts.append("</body></html>")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out_path)
    return out_path


# --------------------------------------------------------------------------- figures


def _has_plotly() -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def _plotly_task(curves: Sequence[Curve], include_js: bool) -> str:
    """A plotly figure: a subplot per metric, a line per prompt style, CI bands, chance dashed, log x."""
    from plotly.subplots import make_subplots

    from orchestrator.analysis.figures import metric_order, style_colors

    metrics = metric_order(curves)
    colors = style_colors([c.prompt for c in curves])
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    kinds = {c.metric: c.kind for c in curves}
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{m} ({kinds[m]})" for m in metrics])
    shown: set[str] = set()
    for i, metric in enumerate(metrics):
        r, col = i // cols + 1, i % cols + 1
        panel = sorted((c for c in curves if c.metric == metric), key=lambda c: c.prompt)
        for c in panel:
            color = colors[c.prompt]
            band = [(x, lo, hi) for x, lo, hi in zip(c.x, c.lo, c.hi, strict=False) if _finite(lo) and _finite(hi)]
            if len(band) >= 2:
                xs, los, his = (list(t) for t in zip(*band, strict=True))
                fig.add_scatter(
                    x=xs + xs[::-1],
                    y=his + los[::-1],
                    fill="toself",
                    fillcolor=_rgba(color, 0.15),
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=c.prompt,
                    row=r,
                    col=col,
                )
            fig.add_scatter(
                x=list(c.x),
                y=list(c.y),
                mode="lines+markers",
                name=c.prompt,
                legendgroup=c.prompt,
                showlegend=c.prompt not in shown,
                line={"color": color},
                customdata=[[m, format_params(x)] for m, x in zip(c.models, c.x, strict=False)],
                hovertemplate="%{customdata[0]} (%{customdata[1]})<br>%{y:.4g}<extra>"
                + html.escape(c.prompt)
                + "</extra>",
                row=r,
                col=col,
            )
            shown.add(c.prompt)
        chances = sorted({c.chance for c in panel if c.chance is not None and _finite(c.chance)})
        for ch in chances:
            fig.add_hline(y=ch, line_dash="dash", line_color="grey", line_width=1, row=r, col=col)
        fig.update_xaxes(type="log", title_text=panel[0].x_label, row=r, col=col)
        fig.update_yaxes(
            title_text="higher is better" if panel[0].higher_is_better else "lower is better", row=r, col=col
        )
    fig.update_layout(height=330 * rows, margin={"t": 40, "b": 40, "l": 50, "r": 20}, template="plotly_white")
    return fig.to_html(full_html=False, include_plotlyjs=True if include_js else False, include_mathjax=False)


def _png_task(curves: Sequence[Curve]) -> str:
    from orchestrator.analysis.figures import task_png

    data = base64.b64encode(task_png(curves)).decode("ascii")
    return f'<img alt="{_e(curves[0].task)}" src="data:image/png;base64,{data}">'


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# --------------------------------------------------------------------------- tables


def _table(
    df: pd.DataFrame | None,
    columns: Sequence[tuple[str, str]],
    label_cols: set[str] | frozenset[str] = frozenset(),
    table_id: str = "",
) -> str:
    """An HTML table of the named columns (those present), values escaped; verdict labels get a CSS class."""
    if df is None or df.empty:
        return f'<p class="empty" id="{_e(table_id)}">(none)</p>'
    cols = [(c, h) for c, h in columns if c in df.columns]
    head = "".join(f"<th>{_e(h)}</th>" for _, h in cols)
    body = []
    for values in df.to_dict("records"):
        cells = []
        for c, _ in cols:
            v = values.get(c)
            text = _fmt(v, c)
            cls = f' class="label {_e(str(v))}"' if c in label_cols and isinstance(v, str) and v else ""
            cells.append(f"<td{cls}>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _partial_banner(partial: Sequence[PartialCell], n_cells: int | None, resume: str | None) -> str:
    """'partial: k of n cells incomplete', each cell with shards done and why, and the resume command."""
    if not partial:
        return ""
    items = "".join(f"<li>{_e(p.describe())}</li>" for p in partial)
    cmd = f"<p>Resume (runs only the missing and failed shards): <code>{_e(resume)}</code></p>" if resume else ""
    return (f'<div class="partial" id="partial-banner"><p><b>{_e(headline(partial, n_cells or len(partial)))}'
            "</b>: these cells are left out of the curves, and verdicts on curves that lack them are at most "
            f"borderline.</p><ul>{items}</ul>{cmd}</div>")


def _counts(vt: pd.DataFrame) -> str:
    if vt.empty:
        return ""
    counts = vt.groupby(["kind", "label"]).size()
    items = [f"{kind} · {label}: {n}" for (kind, label), n in counts.items()]
    return f'<p class="meta">{_e("; ".join(items))}</p>'


def _fmt(v: Any, col: str) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, int | float):
        f = float(v)
        if math.isnan(f):
            return ""
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        if col in ("transition_scale", "reference_transition_scale"):
            return format_params(f)
        return f"{f:.3g}" if isinstance(v, float) else str(v)
    return str(v)


def _e(s: str) -> str:
    return html.escape(str(s), quote=True)


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))


_READING = """
<details open><summary>How to read this</summary><ul>
<li><b>Emergence score</b> (Schaeffer, Miranda &amp; Koyejo 2023): sign · (max − min) / √median(step²).
An evenly rising straight line over n sizes scores n−1, so it is read against that baseline (the <i>ratio</i>),
never against a fixed number; ∞ means most steps are exactly 0 and one is not.</li>
<li><b>Axis</b>: every score is normalised, chance 0 and perfect 1 (BIG-bench's normalised score / 100) where the
metric has both, else worst size 0 and perfect 1; effects are fractions of that range. Continuous metrics are judged
on this, their own axis, like the discontinuous ones; their power-law axis (log distance, log −log p) is shown as
<i>other axis</i> but does not decide, since log(distance) collapses as a model nears perfection.</li>
<li><b>Reliable</b>: two sizes differ when the gap passes a z-test built from their 95% intervals (Wilson for
0/1 scores, bootstrap otherwise) and reaches the minimum effect.</li>
<li><b>Verdicts</b>: <i>flat</i> = no reliable change of at least the minimum effect;
<i>emergent</i> = at least two sizes near chance, lagging a steady per-decade rise (<i>delay</i>), then a reliable
rise of at least a tenth of the range; <i>smooth</i> = a reliable rise without that;
<i>inverse</i> = a sustained reliable decline, or a peak that gives back at least half its rise;
<i>u_shaped</i> = a sustained dip (two or more sizes) reliably below both ends. One bad size is never a U.</li>
<li><b>Confidence</b>: <i>borderline</i> when a statistic that decided the label lies within 25% of its threshold;
<i>margin to each rule</i> lists every statistic against its threshold.</li>
<li><b>Resolution</b>: the CI width and the widest gap between sizes (in decades) bound what a verdict can say:
a gradual sigmoid sampled at sizes a decade apart, with a few hundred examples, looks like a jump.</li>
<li><b>Mirage</b>: emergent under a discontinuous metric (exact match, MC grade) while its declared partner
(token edit distance / target log-prob for exact match, Brier score / correct-option probability for MC grade;
the first present is <i>counted</i>) is smooth: the pattern Schaeffer et al. attribute to the metric, not the model.
Other continuous metrics are shown, marked not declared, and never counted.</li>
</ul></details>
"""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem 2rem;color:#222;max-width:1500px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1.05rem}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0 1rem}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}
td.label{font-weight:600}
td.emergent{background:#fde2e1}td.smooth{background:#e3f1e3}td.flat{background:#f1f1f1}
td.inverse{background:#fff1d6}td.u_shaped{background:#e6e1f5}
.meta{color:#666;font-size:.85rem}.empty{color:#888}
.partial{background:#fff3cd;border:1px solid #e0b000;padding:.4rem .8rem;margin:.8rem 0}
.partial-note{color:#8a5a00;font-size:.85rem}
img{max-width:100%}
"""
