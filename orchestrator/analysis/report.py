"""The sweep's analysis in one call, and its report as one self-contained HTML file.

`analyse` judges every curve (verdicts.py), builds the mirage table
(mirage.py) and the prompt-style comparison (compare.py). `build_report`
writes an HTML file that opens without a server or a network and answers
first: the headline (how many curves are emergent under a discontinuous
metric, how many of those are smooth under their declared continuous
partner), then the mirage table, then per task one small-multiples figure
(a panel per metric, interactive with plotly, plotly.js inlined once, or
PNGs embedded in base64) with each curve's verdict and reason on its panel,
then the full tables: sortable, filterable (a few lines of inline JS), the
reason beside the verdict, wide tables scrolling inside their box. A sweep
with incomplete cells (analysis/partial.py) opens with a banner naming them
and the command that resumes it, and each task's curves say which sizes they
leave out.
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
    ("reason", "reason"),
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
    ("margins", "margin to each rule"),
    ("caveats", "caveats"),
]
MIRAGE_COLUMNS = [
    ("task", "task"),
    ("prompt", "prompt"),
    ("mirage", "mirage"),
    ("flag", "finding"),
    ("discontinuous_metric", "discontinuous"),
    ("discontinuous_label", "verdict"),
    ("continuous_metric", "continuous"),
    ("continuous_label", "verdict"),
    ("declared", "declared partner"),
    ("counted", "counted"),
    ("discontinuous_confidence", "confidence (discontinuous)"),
    ("discontinuous_ratio", "ratio"),
    ("discontinuous_transition", "transition"),
    ("continuous_confidence", "confidence (continuous)"),
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


def mirage_headline(verdicts: Sequence[Verdict], mirage: pd.DataFrame) -> str:
    """The answer in one sentence: N curves emergent under a discontinuous metric; of these, M smooth under
    their declared continuous partner (the counted one, mirage.py). The report and the terminal both open with it."""
    emergent = sorted({v.key for v in verdicts if v.label == "emergent" and v.kind == "discontinuous"})
    if not emergent:
        only = sorted({v.key for v in verdicts if v.label == "emergent"})
        tail = f" {len(only)} {_curves(len(only))} emergent under a continuous metric only." if only else ""
        return "No curve is emergent under a discontinuous metric." + tail
    rows = [] if mirage is None or mirage.empty else list(mirage.itertuples())
    disc = [r for r in rows if r.emergent_under == "discontinuous"]
    checked = {f"{r.task}/{r.prompt}/{r.discontinuous_metric}" for r in disc if r.counted}
    smooth = {f"{r.task}/{r.prompt}/{r.discontinuous_metric}" for r in disc if r.mirage}
    n, m = len(emergent), len(smooth & set(emergent))
    text = (f"{n} {_curves(n)} emergent under a discontinuous metric; of these, {m} smooth under their declared "
            "continuous partner")
    unchecked = len(set(emergent) - checked)
    if unchecked:
        text += f" ({unchecked} without a declared partner in the sweep, so not checked)"
    return text + "."


def _curves(n: int) -> str:
    return "curve" if n == 1 else "curves"


def emergent_verdicts(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The emergent verdicts, discontinuous metrics first, then by task, prompt and metric."""
    found = [v for v in verdicts if v.label == "emergent"]
    return sorted(found, key=lambda v: (v.kind != "discontinuous", v.task, v.prompt, v.metric))


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

    The order answers first: the partial banner (if any), the headline, the mirage table, one small-multiples
    figure per task with each curve's verdict and reason on its panel, then the full tables.

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
    labels = {(v.task, v.prompt, v.metric): v for v in verdicts}
    if figures_dir is not None:
        from orchestrator.analysis.figures import plot_tasks

        plot_tasks(curves, Path(figures_dir), labels={k: v.label for k, v in labels.items()})
    vt = verdict_table(verdicts)
    by_task: dict[str, list[Curve]] = {}
    for c in curves:
        by_task.setdefault(c.task, []).append(c)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _partial_banner(partial, n_cells, resume),
        '<section id="headline" class="headline">',
        f'<p class="answer">{_e(mirage_headline(verdicts, mirage))}</p>',
        f'<p class="detail">{_e(mirage_summary(mirage, verdicts))}</p>',
        f'<p class="meta">{len(curves)} curves, {len(by_task)} tasks, '
        f"{len({c.prompt for c in curves})} prompt styles{_counts(vt)}; written "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · "
        '<a href="#curves">curves per task</a> · <a href="#verdicts">all verdicts</a> · '
        '<a href="#prompts">prompt styles</a> · <a href="#reading">how to read this</a></p>',
        "</section>",
        '<h2 id="mirage">Mirage table: emergent under one metric, what does its continuous partner say?</h2>',
        _table(mirage, MIRAGE_COLUMNS, label_cols={"discontinuous_label", "continuous_label"}, table_id="mirage-table",
               long_cols={"flag"}),
        '<h2 id="curves">Curves per task</h2>',
    ]
    first = True
    for task, group in sorted(by_task.items()):
        parts.append(f'<figure class="task" id="task-{_e(task)}"><h3>{_e(task)}</h3>')
        left_out = [p for p in partial if p.task == task]
        if left_out:
            parts.append('<p class="partial-note">Left out of these curves (incomplete cells): '
                         + _e("; ".join(p.describe() for p in left_out)) + "</p>")
        if use_plotly:
            parts.append(_plotly_task(group, include_js=first, labels=labels))
        else:
            parts.append(_png_task(group, labels))
        parts.append(_panel_verdicts(group, labels))
        parts.append("</figure>")
        first = False
    parts += [
        '<h2 id="tables">Full tables</h2>',
        '<h3 id="verdicts">Verdicts, every curve</h3>',
        _table(vt, VERDICT_COLUMNS, label_cols={"label"}, table_id="verdict-table",
               long_cols={"reason", "margins", "caveats"}),
        '<h3 id="prompts">Prompt styles: where each curve leaves baseline</h3>',
        _table(comparison, COMPARE_COLUMNS, label_cols={"label"}, table_id="compare-table"),
    ]
    if cells_table is not None:
        parts.append(f"<details><summary>Cells ({len(cells_table)})</summary>")
        parts.append(_table(cells_table, [(c, c) for c in cells_table.columns], table_id="cells-table"))
        parts.append("</details>")
    parts += [_READING, f"<script>{_JS}</script>", "</body></html>"]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out_path)
    return out_path


def _panel_verdicts(curves: Sequence[Curve], labels: dict[tuple[str, str, str], Verdict]) -> str:
    """Under each panel of a task's figure (same order and columns): every style's verdict and its reason."""
    from orchestrator.analysis.figures import metric_order, panel_columns, style_colors

    metrics = metric_order(curves)
    colors = style_colors([c.prompt for c in curves])
    cells = []
    for metric in metrics:
        panel = sorted((c for c in curves if c.metric == metric), key=lambda c: c.prompt)
        lines = []
        for c in panel:
            v = labels.get((c.task, c.prompt, c.metric))
            if v is None:
                continue
            lines.append(
                f'<li><span class="swatch" style="background:{colors[c.prompt]}"></span>{_e(c.prompt)}: '
                f'<span class="label {_e(v.label)}">{_e(v.label)}</span> ({_e(v.confidence)}) '
                f'<span class="reason">{_e(v.reason)}</span></li>'
            )
        cells.append(f'<div class="panel"><b>{_e(metric)}</b> ({_e(panel[0].kind)})<ul>{"".join(lines)}</ul></div>')
    cols = panel_columns(len(metrics))
    return f'<div class="panels" style="grid-template-columns:repeat({cols},1fr)">{"".join(cells)}</div>'


# --------------------------------------------------------------------------- figures


def _has_plotly() -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def _plotly_task(
    curves: Sequence[Curve], include_js: bool, labels: dict[tuple[str, str, str], Verdict] | None = None
) -> str:
    """A plotly figure: a subplot per metric titled with each style's verdict (in its line's colour), a line per
    prompt style, CI bands, chance dashed, log x."""
    from plotly.subplots import make_subplots

    from orchestrator.analysis.figures import metric_order, panel_columns, style_colors

    metrics = metric_order(curves)
    colors = style_colors([c.prompt for c in curves])
    cols = panel_columns(len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    kinds = {c.metric: c.kind for c in curves}

    def panel_title(metric: str) -> str:
        found = [(c.prompt, (labels or {}).get((c.task, c.prompt, c.metric))) for c in curves if c.metric == metric]
        verdicts = " / ".join(f'<span style="color:{colors[p]}">{html.escape(v.label)}</span>'
                              for p, v in sorted(found) if v is not None)
        return f"<b>{html.escape(metric)}</b> ({kinds[metric]})" + (f"<br>{verdicts}" if verdicts else "")

    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[panel_title(m) for m in metrics],
                        vertical_spacing=0.4 / rows if rows > 1 else 0.3)  # room for two-line titles
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
                    mode="lines",  # plotly's default adds markers at the band's corners, in other colours
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
    fig.update_annotations(font_size=12)  # the subplot titles
    fig.update_layout(height=350 * rows, margin={"t": 60, "b": 40, "l": 50, "r": 20}, template="plotly_white")
    return fig.to_html(full_html=False, include_plotlyjs=True if include_js else False, include_mathjax=False)


def _png_task(curves: Sequence[Curve], labels: dict[tuple[str, str, str], Verdict] | None = None) -> str:
    from orchestrator.analysis.figures import task_png

    found = {k: v.label for k, v in (labels or {}).items()}
    data = base64.b64encode(task_png(curves, labels=found)).decode("ascii")
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
    long_cols: set[str] | frozenset[str] = frozenset(),
) -> str:
    """An HTML table of the named columns (those present), values escaped, in a box that scrolls sideways (the
    page never does), with a filter box and sortable headers (_JS); verdict labels get a CSS class, `long_cols`
    (reasons, findings) wrap in a wide column instead of running off-screen."""
    if df is None or df.empty:
        return f'<p class="empty" id="{_e(table_id)}">(none)</p>'
    cols = [(c, h) for c, h in columns if c in df.columns]
    head = "".join(f'<th class="col-{_e(c)}" title="click to sort">{_e(h)}</th>' for c, h in cols)
    body = []
    for values in df.to_dict("records"):
        cells = []
        for c, _ in cols:
            v = values.get(c)
            text = _fmt(v, c)
            classes = [f"col-{c}"] + (["long"] if c in long_cols else [])
            if c in label_cols and isinstance(v, str) and v:
                classes += ["label", str(v)]
            cells.append(f'<td class="{_e(" ".join(classes))}">{_e(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    tid = _e(table_id)
    return (f'<div class="tools"><input class="filter" type="search" data-table="{tid}" '
            f'placeholder="filter rows (all words must match)" aria-label="filter {tid}">'
            f'<span class="shown">{len(body)} rows</span></div>'
            f'<div class="scroll" id="{tid}-box"><table id="{tid}" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


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
    """'; discontinuous: 3 emergent, 1 flat; continuous: 4 smooth' (escaped), "" for no verdicts."""
    if vt.empty:
        return ""
    by_kind: dict[str, list[str]] = {}
    for (kind, label), n in vt.groupby(["kind", "label"]).size().items():
        by_kind.setdefault(str(kind), []).append(f"{n} {label}")
    order = sorted(by_kind.items(), key=lambda kv: (kv[0] != "discontinuous", kv[0]))
    return _e("".join(f"; {kind}: {', '.join(items)}" for kind, items in order))


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
<details id="reading"><summary>How to read this</summary><ul>
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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1rem 2rem;color:#222;max-width:1500px}
h1{font-size:1.4rem;margin:.2rem 0 .6rem}h2{font-size:1.2rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem}
.headline{background:#f3f6fb;border:1px solid #c9d6ea;padding:.5rem .9rem;margin:.6rem 0}
.headline .answer{font-size:1.25rem;font-weight:600;margin:.2rem 0}
.headline .detail{font-size:.85rem;color:#333;margin:.3rem 0}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #eee;margin:.2rem 0 1rem}
.tools{display:flex;gap:.8rem;align-items:center;font-size:.8rem;color:#666;margin-top:.4rem}
.tools input{font-size:.8rem;padding:2px 6px;width:22em}
table{border-collapse:collapse;font-size:.8rem}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4;cursor:pointer;white-space:nowrap;user-select:none}
th[data-sort=asc]::after{content:" \\25B2"}th[data-sort=desc]::after{content:" \\25BC"}
td.long{min-width:24em;max-width:40em;white-space:normal}td.col-reason{min-width:34em;max-width:48em}
td.col-margins,td.col-caveats{min-width:44em;max-width:64em}
td.label{font-weight:600}
.emergent{background:#fde2e1}.smooth{background:#e3f1e3}.flat{background:#f1f1f1}
.inverse{background:#fff1d6}.u_shaped{background:#e6e1f5}
td.col-mirage:not(:empty){background:#fde2e1;font-weight:600}
figure.task{margin:0 0 1.5rem}
.panels{display:grid;gap:.4rem 1rem;font-size:.8rem}
.panel ul{list-style:none;padding:0;margin:.2rem 0}.panel li{margin:.2rem 0}
.panel .label{font-weight:600;padding:0 3px}.panel .reason{color:#444}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
.meta{color:#666;font-size:.85rem}.empty{color:#888}
.partial{background:#fff3cd;border:1px solid #e0b000;padding:.4rem .8rem;margin:.8rem 0}
.partial-note{color:#8a5a00;font-size:.85rem}
img{max-width:100%}
"""

# Sortable headers (numbers as numbers, blanks last) and a filter box per table: no library, no network.
_JS = """
(function () {
  function key(td) {
    var t = td.textContent.trim();
    if (t === "") return null;
    if (t === "\u221e") return Infinity;
    if (t === "\u2212\u221e") return -Infinity;
    var n = Number(t.replace("\u2212", "-"));
    return isNaN(n) ? t.toLowerCase() : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var asc = th.dataset.sort !== "asc";
        Array.prototype.forEach.call(heads, function (h) { delete h.dataset.sort; });
        th.dataset.sort = asc ? "asc" : "desc";
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
          var c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = document.getElementById(input.dataset.table), shown = input.nextElementSibling;
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean), rows = table.tBodies[0].rows, n = 0;
      Array.prototype.forEach.call(rows, function (r) {
        var text = r.textContent.toLowerCase();
        var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
        r.style.display = ok ? "" : "none";
        n += ok ? 1 : 0;
      });
      shown.textContent = n + " of " + rows.length + " rows";
    });
  });
})();
"""
