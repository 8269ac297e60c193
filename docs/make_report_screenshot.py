"""Screenshot the HTML reports of two real sweeps at 1400 x 900 in headless Chromium, for docs/report.md.

    python docs/make_report_screenshot.py                      # runs both sweeps in a temporary folder
    python docs/make_report_screenshot.py --demo-root results  # the demo's report from a stored demo sweep

Writes docs/img/report-first-screen.png and report-curves.png (the demo: `orchestrator run experiment=demo`,
tracking off) and report-custom-task.png (README's own task and metric over the zoo: the custom-task sweep of
tests/test_report_layout.py). Both sweeps run as tests/test_report_layout.py runs them (about a minute each
with the zoo built; the zoo is trained first where it is missing). With --demo-root the demo's report is
rebuilt from that store instead (docs/make_demo_docs.analyse_store: no model runs), as `orchestrator report`
does. It prints where each report came from.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "docs"), str(REPO / "tests")]


def stored_demo(root: str, sweep: str, out: Path) -> Path:
    """The report of a stored sweep, rebuilt at `out` from its shards."""
    from make_demo_docs import analyse_store

    from orchestrator.analysis.report import build_report

    cvs, a, _, _ = analyse_store(root, sweep)
    return build_report(cvs, a.verdicts, a.mirage, a.comparison, None, out,
                        title=f"Sweep {sweep}: scaling curves and emergence")


def shoot(page: Path, png: Path, height: int = 900) -> None:
    """`page` at 1400 x `height` to `png`."""
    from test_report_layout import chromium, chromium_args

    browser = chromium()
    if browser is None:
        raise SystemExit("no chromium on PATH")
    with tempfile.TemporaryDirectory() as profile:
        args = [a if not a.startswith("--window-size") else f"--window-size=1400,{height}"
                for a in chromium_args(browser, profile)]
        subprocess.run([*args, f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)


def curves_only(report: Path) -> Path:
    """A copy of `report` with its mirage table hidden: the headline, then "Curves per task"."""
    html = report.read_text(encoding="utf-8")
    page = report.with_name("curves-" + report.name)
    page.write_text(html.replace('<h2 id="mirage">', '<div hidden><h2 id="mirage">', 1).replace(
        '<h2 id="curves">', '</div><h2 id="curves">', 1), encoding="utf-8")
    return page


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo-root", help="a store holding a finished demo sweep: its report is rebuilt, not rerun")
    p.add_argument("--sweep", default="demo", help="the sweep's name under --demo-root")
    p.add_argument("--out", default=str(REPO / "docs" / "img"))
    args = p.parse_args()
    out = Path(args.out)
    from test_report_layout import run_custom_task, run_demo

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.demo_root:
            demo = stored_demo(args.demo_root, args.sweep, work / "stored" / "report.html")
            print(f"demo: rebuilt from the stored sweep {args.demo_root}/{args.sweep}")
        else:
            demo = run_demo(work / "demo").report
            print("demo: orchestrator run experiment=demo tracking=off, in a temporary folder")
        shoot(demo, out / "report-first-screen.png")
        shoot(curves_only(demo), out / "report-curves.png", height=1100)
        custom = run_custom_task(work / "custom").report
        print("custom task: README's sums task and same_length metric, 100 two-digit sums, five zoo sizes")
        shoot(custom, out / "report-custom-task.png")
    print(f"screenshots in {out}: report-first-screen.png, report-curves.png, report-custom-task.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
