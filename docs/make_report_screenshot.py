"""Screenshot the first screen (1400 x 900) of the demo's HTML report for docs/report.md, in headless Chromium.

    python docs/make_report_screenshot.py                  # docs/img/report-first-screen.png and report-curves.png
    python docs/make_report_screenshot.py --root results --sweep demo

With a stored demo sweep (results/demo/manifest.json) the report is built from it, as `orchestrator report`
does (docs/make_demo_docs.analyse_store: no model runs); without one, from the demo-like constructed curves
of tests/test_report_layout.py (3 tasks x 3 prompt styles x 3 metrics). It prints which, and docs/report.md
says which the committed screenshots are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "docs"), str(REPO / "tests")]


def build(root: str, sweep: str, out: Path) -> str:
    """Write the report to `out`; returns where its inputs came from."""
    from orchestrator.analysis.report import build_report

    if (Path(root) / sweep / "manifest.json").exists():
        from make_demo_docs import analyse_store

        cvs, a, _, _ = analyse_store(root, sweep)
        build_report(cvs, a.verdicts, a.mirage, a.comparison, None, out,
                     title=f"Sweep {sweep}: scaling curves and emergence")
        return f"the stored sweep {root}/{sweep}"
    from test_report_layout import build_demo_like_report

    build_demo_like_report(out)
    return "constructed demo-like curves (tests/test_report_layout.py): no stored demo sweep was found"


def shoot(page: Path, png: Path, height: int = 900) -> None:
    from test_report_layout import chromium, chromium_args

    browser = chromium()
    if browser is None:
        raise SystemExit("no chromium on PATH")
    with tempfile.TemporaryDirectory() as profile:
        args = [a if not a.startswith("--window-size") else f"--window-size=1400,{height}"
                for a in chromium_args(browser, profile)]
        subprocess.run([*args, f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(REPO / "results"))
    p.add_argument("--sweep", default="demo")
    p.add_argument("--out", default=str(REPO / "docs" / "img"))
    args = p.parse_args()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        source = build(args.root, args.sweep, report)
        shoot(report, out / "report-first-screen.png")
        # the curves: the page from its "Curves per task" heading, cropped from a tall screenshot
        html = report.read_text(encoding="utf-8")
        curves_only = html.replace('<h2 id="mirage">', '<div hidden><h2 id="mirage">', 1).replace(
            '<h2 id="curves">', '</div><h2 id="curves">', 1)
        page = Path(tmp) / "curves.html"
        page.write_text(curves_only, encoding="utf-8")
        shoot(page, out / "report-curves.png", height=1100)
    print(f"report built from {source}; screenshots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
