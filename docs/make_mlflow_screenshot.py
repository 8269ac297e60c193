"""Screenshot a curve run of the demo in the MLflow UI with its charts on a log x axis (log10_params), for README.

    python docs/make_mlflow_screenshot.py                          # runs the demo into a temporary SQLite store
    python docs/make_mlflow_screenshot.py --tracking-uri sqlite:////abs/path/mlflow.db   # a store with the demo

Starts `orchestrator ui tracking.uri=<store> --port <a free port>` (mlflow ui on 127.0.0.1), opens the curve run's
Model metrics tab in headless Chromium and does what a reader does: Configure charts (the gear beside
Auto-refresh) > X-axis > Metric > log10_params, then a regex in "Search metric charts" keeps the discontinuous
metrics and their continuous partners. Writes docs/img/mlflow-curve-logx.png, and stops the UI and the browser.

Needs Playwright, the Python package only (`pip install playwright`; not a dependency of orchestrator): it drives
the system's Chromium (--chromium, default the first of chromium, chromium-browser, google-chrome on PATH), so
Playwright's own browser download is not needed.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

RUN = "curve add_3/zero_shot"
CHARTS = "^(exact_match|token_edit_distance|target_logprob|multiple_choice_grade|brier_score|correct_option_prob)$"
X_AXIS = "log10_params"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curve_run(uri: str, experiment: str, name: str) -> tuple[str, str]:
    """(experiment id, run id) of the run called `name`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in {uri}")
    runs = client.search_runs([exp.experiment_id], f"attributes.run_name = '{name}'")
    if not runs:
        raise SystemExit(f"no run {name!r} in experiment {experiment!r} of {uri}")
    return exp.experiment_id, runs[0].info.run_id


def start_ui(uri: str, port: int, log: Path) -> subprocess.Popen:
    """`orchestrator ui` in its own process group (mlflow ui starts workers), once it answers /health."""
    exe = Path(sys.executable).with_name("orchestrator")
    proc = subprocess.Popen([str(exe), "ui", f"tracking.uri={uri}", "--port", str(port)], start_new_session=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"orchestrator ui exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    stop(proc)
    raise SystemExit(f"orchestrator ui did not answer on port {port} within 180 s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    """The UI's whole process group (orchestrator ui, mlflow ui and its workers): SIGTERM, then SIGKILL to
    whatever of it is left after 20 s."""
    group = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(group, 0)  # anyone left in the group?
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            continue
        break
    proc.wait(20)


def shoot(url: str, png: Path, browser: str) -> None:
    """The run page at `url` with every chart's x axis set to X_AXIS and the charts filtered to CHARTS."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page(viewport={"width": 1500, "height": 950})
            page.goto(url)
            gear = page.get_by_role("button", name="Configure charts")
            gear.wait_for(timeout=180_000)
            page.wait_for_timeout(2000)
            close = page.get_by_role("button", name="Close")  # the MLflow Assistant side panel
            if close.count() and close.first.is_visible():
                close.first.click()
            gear.click()
            page.get_by_role("menuitem", name="Metric").hover()
            # a click event, not a pointer move: the move from "Metric" to its submenu can close it
            page.get_by_role("menuitemcheckbox", name=X_AXIS).dispatch_event("click")
            page.keyboard.press("Escape")
            page.get_by_role("searchbox").fill(CHARTS)
            n = CHARTS.count("|") + 1
            deadline = time.monotonic() + 60
            while page.get_by_text(X_AXIS, exact=True).count() < n:  # each chart's x axis title
                if time.monotonic() > deadline:
                    raise SystemExit(f"the charts' x axes never read {X_AXIS}")
                page.wait_for_timeout(500)
            page.mouse.move(1, 940)  # off the charts: no plotly toolbar, no hover box
            page.evaluate("document.activeElement && document.activeElement.blur()")  # nor the gear's tooltip
            page.wait_for_timeout(1500)
            page.screenshot(path=str(png))
        finally:
            b.close()


def main() -> int:
    from test_report_layout import chromium, run_demo

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", help="a local MLflow store (sqlite:///...) holding the demo; default: run it")
    p.add_argument("--experiment", default="demo")
    p.add_argument("--run", default=RUN, help="the curve run's name")
    p.add_argument("--chromium", default=chromium())
    p.add_argument("--out", default=str(REPO / "docs" / "img" / "mlflow-curve-logx.png"))
    args = p.parse_args()
    if not args.chromium:
        raise SystemExit("no chromium on PATH; name one with --chromium")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        uri = args.tracking_uri
        if uri is None:
            uri = f"sqlite:///{work / 'mlflow.db'}"
            run_demo(work / "demo", f"tracking.uri={uri}")
            print(f"demo: orchestrator run experiment=demo tracking.uri={uri}, in a temporary folder")
        exp_id, run_id = curve_run(uri, args.experiment, args.run)
        port = free_port()
        ui = start_ui(uri, port, work / "ui.log")
        try:
            shoot(f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs/{run_id}/model-metrics", Path(args.out),
                  args.chromium)
        finally:
            stop(ui)
    print(f"{args.run!r} with x = {X_AXIS}: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
