"""One sweep, end to end: config -> plan -> execute -> store -> record -> analyse.

Each stage lives in its own module; this one only passes data along. Running
the same sweep again finds every finished shard in the store and every MLflow
run by its tag, so it recomputes and duplicates nothing: a resume is a re-run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from orchestrator import __version__
from orchestrator.analysis.curves import CellResult, Curve, curves
from orchestrator.analysis.partial import PartialCell, failure_reasons, incomplete_cells, resume_command, tag_value
from orchestrator.analysis.plots import plot_all
from orchestrator.analysis.report import Analysis, analyse, build_report
from orchestrator.cellcache import CellCache, VerifiedIndex
from orchestrator.config import SweepConfig, to_container
from orchestrator.passes import describe
from orchestrator.passes import of_metrics as passes_of_metrics
from orchestrator.plan import RECORD_FORMAT_VERSION, Plan, Resolved, make_plan
from orchestrator.scoring import (
    check_metric_names,
    check_metrics_apply,
    check_passes_held,
    keep_partials,
    metric_info,
    score_cells,
)
from orchestrator.secrets import MASK, redact
from orchestrator.store import SweepStore
from orchestrator.tasks import load_task
from orchestrator.tasks.task import Task
from orchestrator.timing import Timings, collect, lap

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    plan: Plan
    cells: list[CellResult]
    curves: list[Curve]
    plots: list[Path]
    shards_run: int = 0
    shards_skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    examples_per_second: float = 0.0
    parent_run_id: str | None = None
    analysis: Analysis | None = None
    report: Path | None = None
    partial: list[PartialCell] = field(default_factory=list)  # planned cells with a missing or failed shard
    worker_logs: str = ""  # Ray's log folder when the workers' output was kept out of the terminal
    timings: dict = field(default_factory=dict)  # the driver's wall time by phase (orchestrator.timing), run() only


CODE_VERSION_ENV = "ORCHESTRATOR_CODE_VERSION"


def code_version(source: Path | None = None) -> str:
    """Package version plus the git commit of the source tree ("+<sha>", ".dirty" with uncommitted changes).

    `source` is the folder holding the `orchestrator` package (this checkout by default). Inside a Ray job the
    code is a copy without `.git`: the submitter then passes its own code_version() in ORCHESTRATOR_CODE_VERSION,
    and without it the version says the commit is unknown instead of silently dropping it.
    """
    source = source or Path(__file__).resolve().parents[1]
    sha = _git_commit(source)
    if sha:
        return f"{__version__}+{sha}"
    given = os.environ.get(CODE_VERSION_ENV, "").strip()
    return given or f"{__version__} (commit unknown: no .git; set {CODE_VERSION_ENV})"


def _git_commit(source: Path) -> str:
    """Short commit of the git repository that tracks `source`/orchestrator, "" where none does.

    A copy without `.git` placed inside another repository (a venv's site-packages, Ray's job folder under a
    checkout) must not report that repository's commit, so the package's own files must be tracked by it.
    """
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=5, check=False)

    try:
        if git("ls-files", "--error-unmatch", "--", "orchestrator/__init__.py").returncode != 0:
            return ""
        sha = git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = git("diff", "--quiet", "HEAD", "--", ".").returncode == 1  # only changes under `source` count
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{sha}.dirty" if sha and dirty else sha


def ensure_models(cfg: SweepConfig, progress: bool = True) -> None:
    """Build the embedded zoo's missing members before anything else (the demo needs no download)."""
    if cfg.model.build != "zoo":
        return
    missing: dict[Path, list[str]] = {}
    for name in cfg.model.sizes:
        path = Path(os.path.expanduser(cfg.model.catalog[name].path))
        if not (path / "config.json").exists():
            missing.setdefault(path.parent, []).append(path.name)
    if missing:
        from orchestrator.zoo import build  # imports torch: only when something is to be built
    for out_dir, names in missing.items():
        print(f"zoo: building {', '.join(names)} into {out_dir} (once; later runs reuse it)")
        build(out_dir=out_dir, names=names, progress=progress)


def load_tasks(cfg: SweepConfig) -> dict[str, Task]:
    """Read and check every task, and every task x prompt style pair, before any shard runs."""
    from orchestrator.prompts import check

    tasks = {name: load_task(name, tcfg) for name, tcfg in sorted(cfg.tasks.items())}
    for tname, task in tasks.items():
        for pname, pcfg in sorted(cfg.prompts.items()):
            check(task, pcfg, label=f"prompts.{pname} on tasks.{tname}")
    return tasks


def prepare(
    cfg: SweepConfig, resolved: dict[str, Resolved] | None = None
) -> tuple[Plan, dict[str, Task], SweepStore]:
    """Check metrics and tasks, resolve each model to what it is (hub commit, zoo spec hash, folder content),
    and plan. `resolved` replaces the resolution (a rescore uses the one recorded in the manifest)."""
    from orchestrator.resolve import resolve_models
    from orchestrator.store import check_root

    check_root(cfg.storage.root, cfg.storage.options)  # s3:// without s3fs: the install command, before anything
    check_metric_names(cfg.metrics)
    tasks = load_tasks(cfg)
    check_metrics_apply(list(cfg.metrics.names), tasks, dict(cfg.prompts))
    if resolved is None:
        resolved = resolve_models(cfg.model)
    plan = make_plan(cfg, tasks, resolved)
    for m in plan.models:
        log.info("model %s: %s", m.name, (resolved.get(m.name) or Resolved(m.revision)).note or m.revision)
    return plan, tasks, SweepStore(cfg.storage.root, plan.sweep_id, cfg.storage.options)


def manifest(cfg: SweepConfig, plan: Plan, tasks: dict[str, Task]) -> dict:
    """The sweep's record in the store: config, code, what each model resolved to, and the plan.

    Credentials are masked (orchestrator.secrets): a manifest is shared with the results.
    """
    return redact({
        "sweep_id": plan.sweep_id,
        "fingerprint": plan.fingerprint,
        "code_version": code_version(),
        "record_format": RECORD_FORMAT_VERSION,
        "config": to_container(cfg),
        "models": {
            m.name: {
                "path": m.path,
                "revision": m.revision,
                "requested_revision": m.requested_revision,
                "fingerprint": m.fingerprint,
            }
            for m in plan.models
        },
        "tasks": {n: {"id": t.id, "source": t.source, "examples": len(t.examples)} for n, t in tasks.items()},
        "cells": [
            {
                "id": c.id,
                "model": c.model.name,
                "params": c.model.params,
                "train_step": c.model.train_step,
                "task": c.task,
                "prompt": c.prompt.name,
                "shards": [s.id for s in plan.shards_of(c.id)],
            }
            for c in plan.cells
        ],
    })


GRID_KEYS = ("tasks", "prompts")  # config sections keyed by name whose union is the sweep's grid


def union_config(old: dict, new: dict) -> dict:
    """`new` config with the union of both grids: sizes (and their catalog entries), tasks and prompt styles.

    The config a sweep's cells were made with, whichever sub- or super-grid ran last; other settings are new's.
    """
    out = json.loads(json.dumps(new))
    om, nm = old.get("model") or {}, out.setdefault("model", {})
    nm["catalog"] = {**(om.get("catalog") or {}), **(nm.get("catalog") or {})}
    nm["sizes"] = [*(nm.get("sizes") or []), *[s for s in om.get("sizes") or [] if s not in (nm.get("sizes") or [])]]
    for key in GRID_KEYS:
        out[key] = {**(old.get(key) or {}), **(out.get(key) or {})}
    return out


def merge_manifest(old: dict | None, new: dict) -> dict:
    """This run's manifest merged into the sweep's stored one: never overwritten by a smaller grid.

    Cells, models and tasks are the union; `config` is this run's with the union grid (union_config); `runs`
    keeps each run's time, config, code version and cells, so drift between runs is on record. Drift cannot
    change finished shards: shard ids hash everything that decides a result, so a drifted run makes new shards.
    """
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": new["config"],
             "code_version": new["code_version"], "fingerprint": new["fingerprint"],
             "cells": [c["id"] for c in new["cells"]]}
    if not old:
        return {**new, "runs": [entry]}
    runs = list(old.get("runs") or [{"time": None, "config": old.get("config"), "code_version": old.get("code_version"),
                                     "fingerprint": old.get("fingerprint"), "cells": [c["id"] for c in old["cells"]]}])
    last = runs[-1] if runs else {}
    if all(last.get(k) == entry[k] for k in ("config", "code_version", "fingerprint")):
        runs[-1] = {**last, "time": entry["time"]}  # a plain resume: no new entry
    else:
        runs.append(entry)
    cells = {c["id"]: c for c in old.get("cells") or []}
    cells.update({c["id"]: c for c in new["cells"]})
    return {
        **new,
        "config": union_config(old.get("config") or {}, new["config"]),
        "models": {**(old.get("models") or {}), **new["models"]},
        "tasks": {**(old.get("tasks") or {}), **new["tasks"]},
        "cells": list(cells.values()),
        "runs": runs,
    }


def _stored_manifest(store: SweepStore) -> dict | None:
    return store.read_json("manifest.json") if store.has("manifest.json") else None


def recorded_models(stored: dict) -> dict[str, Resolved] | None:
    """What each model resolved to when the sweep ran, from its manifest (None for a manifest without it)."""
    models = stored.get("models")
    if not isinstance(models, dict):
        return None
    return {name: Resolved(m["revision"], m.get("fingerprint"), "recorded in manifest.json")
            for name, m in models.items()}


def run(cfg: SweepConfig, progress: bool = True) -> SweepResult:
    """Run a sweep to the end and record it; safe to repeat (a resume is a re-run).

    One driver per sweep: the store's driver lease (store.DriverLease) makes a second one refuse, naming the first.
    """
    from orchestrator.preflight import preflight

    t0 = time.perf_counter()
    with collect() as timings:
        preflight(cfg)  # store writable, cluster and tracking answer, context fits: before anything is written
        lap("preflight")
        plan, tasks, store = prepare(cfg)  # bad task files or styles fail here, before any model is built
        lap("plan")
        lease = store.acquire_driver()
        lap("store")
        try:
            result = _record_union(cfg, store, _run_leased(cfg, progress, t0, plan, tasks, store))
        finally:
            lease.release()
        lap("store")
    return _with_timings(cfg, result, timings)


def _with_timings(cfg: SweepConfig, result: SweepResult, timings: Timings) -> SweepResult:
    """The driver's phases on the result and as `timings.json` beside the report (benchmarks read it)."""
    result.timings = timings.to_dict()
    out_dir = Path(cfg.sweep.output_dir) / result.plan.sweep_id
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "timings.json").write_text(json.dumps(result.timings, indent=1) + "\n")
    return result


def _record_union(cfg: SweepConfig, store: SweepStore, result: SweepResult) -> SweepResult:
    """After a run of a smaller grid than the sweep's, rebuild curves, report and MLflow from every cell the
    sweep has (the merged manifest): a sub-grid rerun must not hide the rest. Runs no model."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from orchestrator.config import SweepConfig as Schema
    from orchestrator.config import validate

    stored = _stored_manifest(store) or {}
    if {c["id"] for c in stored.get("cells") or []} <= {c.id for c in result.plan.cells}:
        return result
    grid = union_config(stored.get("config") or {}, to_container(cfg))
    ucfg = validate(OmegaConf.merge(OmegaConf.structured(Schema), grid))
    plan, tasks, _ = prepare(ucfg, recorded_models(stored))
    full = record(ucfg, plan, tasks, store, status="FAILED" if result.failed else None, failed=result.failed)
    keep = {"plan", "cells", "curves", "plots", "analysis", "report", "parent_run_id"}
    for f in fields(result):
        if f.name not in keep:
            setattr(full, f.name, getattr(result, f.name))
    return full


def _run_leased(cfg: SweepConfig, progress: bool, t0: float, plan: Plan, tasks: dict[str, Task],
                store: SweepStore) -> SweepResult:
    """The sweep's work, while this process holds the driver lease."""
    from dataclasses import asdict

    from orchestrator.execute import Failure, ShardOutcome, execute

    if not cfg.cluster.address:
        ensure_models(cfg, progress)  # a local cluster: build the zoo here, with progress; on a cluster each node does
    lap("models")
    store.write_json("manifest.json", merge_manifest(_stored_manifest(store), manifest(cfg, plan, tasks)))
    listed = store._entries()  # one listing (100k files: seconds): each shard's passes, and sizes for verify
    have = {sid: passes for sid, (_, passes) in listed.items()}
    done = set(have)
    # damaged shard files (truncated, empty, another shard's) are quarantined here and so recomputed
    # files checked before under the same name and size are trusted (orchestrator.cellcache): a rerun of a
    # 100k-shard sweep does not read 100k footers again
    verified = VerifiedIndex.load(store)
    sizes = {sid: size for sid, (size, _) in listed.items()}
    done -= set(verified.verify(done & {s.id for s in plan.shards}, {s.id: s.size for s in plan.shards}, sizes))
    # only the inference the metrics need runs; a stored shard that lacks some of it is run again with both
    needed = passes_of_metrics(cfg.metrics.names)
    upgrade = {sid: have[sid] for sid in done if not needed <= have[sid]}
    if upgrade:
        lacking = frozenset().union(*(needed - p for p in upgrade.values()))
        log.warning("%d stored shard(s) lack %s, which metrics.names needs: running them again", len(upgrade),
                    describe(lacking))
    done -= set(upgrade)
    lap("store")
    # the cells the live view scores are cached under the keys the final record computes (orchestrator.cellcache):
    # each shard written in this run enters the verified index as it lands, so the record reads no shard again
    cache = CellCache(store, cfg.metrics, checksums=verified.current(sizes))
    live = _live_view(cfg, plan, tasks, store, done, cache)
    lap("tracking")
    landed_here: list[str] = []

    failed_before = set(store.failures())

    def landed(shard, outcome: ShardOutcome) -> None:
        written = outcome.written
        if outcome.records is not None:  # a store only this process reaches: the driver writes
            store.write_shard(shard.id, outcome.records, outcome.passes, outcome.replaces)
            written = store.written.pop(shard.id, None)
        if written:
            verified.landed(shard.id, written)
            cache.checksums[shard.id] = written[2]
            landed_here.append(shard.id)
        if shard.id in failed_before:
            store.clear_failure(shard.id)
        if live:
            live.shard_done(shard, outcome)

    def gave_up(shard, failure: Failure) -> None:
        store.write_failure(shard.id, {**asdict(failure), "cell": plan.cell(shard.cell_id).label,
                                       "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if live:
            live.shard_failed(shard, str(failure))

    interrupted: str | None = "KILLED"  # until execute returns: KILLED for Ctrl-C, FAILED for an error
    try:
        report = execute(plan, tasks, cfg, done, worker_store(cfg, plan), landed, gave_up, progress,
                         on_tick=live.flush if live else (lambda: None), tick=max(1.0, cfg.tracking.live_interval),
                         passes=needed, stored=upgrade)
        interrupted = None
        lap("execute")  # replicas' model loads and inference, and the driver's dispatch (Ray start-up: "startup")
    except KeyboardInterrupt:
        raise
    except BaseException:
        interrupted = "FAILED"
        raise
    finally:
        if landed_here:
            _save_index(verified)
        if live:
            _close_live(live, interrupted)
    lap("tracking")
    result = record(cfg, plan, tasks, store, status="FAILED" if report.failed else None, failed=report.failed)
    result.shards_run = report.completed
    result.shards_skipped = report.skipped
    result.failed = report.failed
    result.examples_per_second = report.examples_per_second
    result.worker_logs = report.worker_logs
    result.seconds = time.perf_counter() - t0
    return result


def _save_index(verified: VerifiedIndex) -> None:
    """The verified index with this run's shards; a cache, so a store that refuses it costs only a re-check."""
    try:
        verified.save()
    except Exception as e:  # noqa: BLE001 - the shards are in the store; the next run checks their footers
        log.warning("could not save the verified-shard index (%s: %s)", type(e).__name__, e)


def worker_store(cfg: SweepConfig, plan: Plan):
    """Where replicas write shards: the store root (a local one made absolute), or None for a memory:// store,
    which lives in this process only (the driver then writes what the replicas return)."""
    from orchestrator.execute import StoreSpec

    root = cfg.storage.root
    if root.startswith("memory://"):
        return None
    if "://" not in root and "::" not in root:
        root = os.path.abspath(os.path.expanduser(root))
    return StoreSpec(root, plan.sweep_id, dict(cfg.storage.options))


def _live_view(cfg: SweepConfig, plan: Plan, tasks: dict[str, Task], store: SweepStore, done: set[str],
               cache: CellCache | None = None):
    """The live MLflow view, or None (tracking off, live off, or MLflow unreachable: said once, the sweep goes on)."""
    if not (cfg.tracking.enabled and cfg.tracking.live):
        return None
    from orchestrator.live import LiveView

    try:
        return LiveView(cfg, plan, tasks, store, done, code_version(), cache)
    except Exception as e:
        log.warning("MLflow is not updated while this sweep runs (%s: %s); it is filled in when the sweep ends",
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return None


INTERRUPTED_CLOSE_S = 5.0  # after Ctrl-C, how long the live MLflow runs may take to be marked KILLED


def _close_live(live, interrupted: str | None) -> None:
    """End the live MLflow view. After Ctrl-C it gets at most INTERRUPTED_CLOSE_S: the interrupt may have landed
    inside an MLflow write (a SQLite store then stays locked for its busy timeout, a server may be slow), and a
    stop must take seconds; what is not marked now is rebuilt from the store by the next run or `sync`."""
    def close() -> None:
        live.close(interrupted=interrupted is not None)
        if interrupted:
            _end_parent(live, interrupted)

    if interrupted != "KILLED":
        close()
        return
    worker = threading.Thread(target=close, name="close-live-mlflow", daemon=True)
    worker.start()
    worker.join(INTERRUPTED_CLOSE_S)
    if worker.is_alive():
        log.warning("MLflow did not answer within %.0f s of the interrupt; its runs are marked when the sweep is "
                    "resumed (or with `orchestrator sync`)", INTERRUPTED_CLOSE_S)


def _end_parent(live, status: str) -> None:
    try:
        live.tracker.set_status(live.parent, status)
    except Exception as e:
        log.warning("could not mark the MLflow parent run %s (%s)", status, type(e).__name__)


def record(cfg: SweepConfig, plan: Plan, tasks: dict[str, Task], store: SweepStore,
           status: str | None = None, failed: dict[str, str] | None = None, view: str | None = None) -> SweepResult:
    """Score finished cells, draw curves, and (re)build the MLflow view. Runs no model.

    `view` (a rescore with fewer metrics than the sweep) writes everything under `views/<view>/`, in the
    output folder and the store, and leaves the full results and MLflow untouched.

    `status` ends the parent run (FAILED when shards failed); by default FINISHED when every cell is scored.
    Cells with a missing or failed shard are partial (analysis/partial.py): their reason is the error of
    `failed` (shard id -> error, this run's) or else of the store's failure records.
    """
    listed = store._entries()
    done = {sid: passes for sid, (_, passes) in listed.items()}
    # unchanged cells are not read or bootstrapped again (orchestrator.cellcache)
    cache = CellCache(store, cfg.metrics, {sid: size for sid, (size, _) in listed.items()})
    cells = score_cells(plan, store, tasks, cfg.metrics, done=done, cache=cache)
    if len(cells) < len(plan.cells):  # the finished shards of incomplete cells: their resume reads only what it adds
        keep_partials(plan, store, tasks, cfg.metrics, done, cache)
    partial = incomplete_cells(plan, done, {**failure_reasons(store.failures()), **(failed or {})})
    lap("score")
    info = metric_info(list(cfg.metrics.names))
    cvs = curves(cells, info, x=cfg.analysis.x)
    out_dir = Path(cfg.sweep.output_dir) / plan.sweep_id
    key = ""  # where in the store
    if view:
        out_dir, key = out_dir / "views" / view, f"views/{view}/"
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_all(cvs, out_dir / "curves")
    table = cells_table(cells, partial)
    table.to_csv(out_dir / "cells.csv", index=False)
    for p in plots:
        store.write_bytes(f"{key}curves/{p.name}", p.read_bytes())
    store.write_bytes(f"{key}cells.csv", table.to_csv(index=False).encode())
    analysis = analyse(cvs, cfg.analysis, partial)
    extra = write_analysis(analysis, cvs, table, out_dir, plan.sweep_id, n_cells=len(plan.cells),
                           resume=resume_command(plan.sweep_id, cfg.storage.root))
    for p in extra:
        store.write_bytes(f"{key}analysis/{p.relative_to(out_dir)}", p.read_bytes())
    lap("analysis")
    result = SweepResult(
        plan=plan, cells=cells, curves=cvs, plots=plots, analysis=analysis, report=out_dir / "report.html",
        partial=partial,
    )
    if cfg.tracking.enabled and not view:
        if status is None:
            status = "FINISHED" if len(cells) == len(plan.cells) else "FAILED"
        result.parent_run_id = track(cfg, plan, cells, cvs, plots, out_dir, extra, status, partial,
                                     analysis.verdicts)
        lap("tracking")
    return result


def write_analysis(
    analysis: Analysis, cvs: list[Curve], table: pd.DataFrame, out_dir: Path, sweep_id: str,
    n_cells: int | None = None, resume: str | None = None,
) -> list[Path]:
    """Verdict, mirage and prompt-comparison tables, per-task figures and the HTML report (with the partial
    banner when `analysis.partial` lists incomplete cells, of `n_cells`, and `resume` runs them)."""
    files = []
    for name, frame in (
        ("verdicts", analysis.verdict_table),
        ("mirage", analysis.mirage),
        ("prompt_comparison", analysis.comparison),
    ):
        path = out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        files.append(path)
    report = build_report(
        cvs,
        analysis.verdicts,
        analysis.mirage,
        analysis.comparison,
        table,
        out_dir / "report.html",
        title=f"Sweep {sweep_id}: scaling curves and emergence",
        figures_dir=out_dir / "figures",
        partial=analysis.partial,
        n_cells=n_cells,
        resume=resume,
    )
    files.append(report)
    files.extend(sorted((out_dir / "figures").glob("*.png")))
    return files


def track(cfg, plan, cells, cvs, plots, out_dir, extra: list[Path], status: str = "FINISHED",
          partial: list[PartialCell] = (), verdicts: list = ()) -> str | None:
    """_track, or, with MLflow unreachable (or refusing), one warning naming the command that catches up later,
    and None: the results are in the store already. Every run is found by tag before it is written, so the
    later pass (`orchestrator sync`) logs nothing twice."""
    try:
        return _track(cfg, plan, cells, cvs, plots, out_dir, extra, status, partial, verdicts)
    except Exception as e:  # noqa: BLE001 - MlflowException, requests' ConnectionError, ...: all mean "not now"
        from orchestrator.secrets import redact_text

        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        root = redact_text(cfg.storage.root)
        log.warning(
            "MLflow at %s could not be updated (%s: %s). The results are in the store (%s/%s); bring MLflow up "
            "to date when it is back with: orchestrator sync %s --root %s",
            redact_text(cfg.tracking.uri), type(e).__name__, redact_text(msg)[:300], root, plan.sweep_id,
            plan.sweep_id, root,
        )
        return None


def _track(cfg, plan, cells, cvs, plots, out_dir, extra: list[Path], status: str = "FINISHED",
           partial: list[PartialCell] = (), verdicts: list = ()) -> str:
    """The whole MLflow view from the scored cells: parent, cell runs, curve runs, artifacts; ends with `status`.

    The parent carries the tag `orchestrator.partial` ("k/n cells incomplete") while cells are partial; the
    tag is removed, from the parent and from each cell run, once they are complete (a resume).
    """
    from orchestrator.live import log_cell, log_curves, open_parent
    from orchestrator.tracking import Tracker

    tracker = Tracker(cfg.tracking.uri, cfg.tracking.experiment or plan.sweep_id)
    parent = open_parent(tracker, cfg, plan, code_version())
    for c in cells:
        log_cell(tracker, parent, plan, c)
    log_curves(tracker, parent, cvs, cfg.analysis.x, plots, verdicts=verdicts)
    tracker.log_artifacts(parent, list(plots) + [out_dir / "cells.csv"], "curves")
    tracker.log_artifacts(parent, [p for p in extra if p.suffix != ".png"], "analysis")
    tracker.log_artifacts(parent, [p for p in extra if p.suffix == ".png"], "analysis/figures")
    tracker.finish(parent, {"cells_scored": len(cells), "cells_planned": len(plan.cells)}, status)
    _mark_partial(tracker, parent, tag_value(partial, len(plan.cells)) if partial else None,
                  {p.cell_id for p in partial})
    return parent


PARTIAL_TAG = "orchestrator.partial"


def _mark_partial(tracker, parent: str, text: str | None, partial_cells: set[str]) -> None:
    """Tag the parent partial (`text`), or untag it; untag cell runs that are no longer partial."""
    client = tracker.client
    if text:
        client.set_tag(parent, PARTIAL_TAG, text)
    elif PARTIAL_TAG in client.get_run(parent).data.tags:
        client.delete_tag(parent, PARTIAL_TAG)
    flt = f"tags.`{PARTIAL_TAG}` LIKE '%' and tags.`mlflow.parentRunId` = '{parent}'"
    for run in client.search_runs([tracker.experiment_id], filter_string=flt, max_results=10000):
        if run.data.tags.get("orchestrator.cell_id") not in partial_cells:
            client.delete_tag(run.info.run_id, PARTIAL_TAG)


def cells_table(cells: list[CellResult], partial: list[PartialCell] = ()) -> pd.DataFrame:
    """One row per cell, one column per metric mean: the terminal summary and cells.csv.

    With `partial` cells, each gets a row too, without scores, and two columns say which rows are partial:
    `shards` (done/total) and `partial` (why; empty for complete cells).

    `shots_dropped` and `truncated` count the cell's examples that lost exemplars,
    or whose prompt the model did not read whole, to fit the context.
    `nodes` is how many Ray nodes ran the cell's shards (absent for a store written before shards said so).

    Checkpoints of one model share `params`; their `train_step` gets a column and orders them.
    """
    steps = any(c.train_step is not None for c in [*cells, *partial])
    nodes = any(c.nodes is not None for c in cells)
    rows = []
    for c in cells:
        row = {"model": c.model, "params": c.params}
        if steps:
            row["train_step"] = c.train_step
        row.update({"task": c.task, "prompt": c.prompt, "n": c.n_examples,
                    "shots_dropped": c.shots_dropped, "truncated": c.truncated})
        if nodes:
            row["nodes"] = c.nodes
        row.update({m: s["mean"] for m, s in c.scores.items()})
        if partial:
            row.update({"shards": "complete", "partial": ""})
        rows.append(row)
    for p in partial:
        rows.append({"model": p.model, "params": p.params, **({"train_step": p.train_step} if steps else {}),
                     "task": p.task, "prompt": p.prompt, "shards": f"{p.shards_done}/{p.shards_total}",
                     "partial": p.why})
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["task", "prompt", "params", *(["train_step"] if steps else [])]).reset_index(drop=True)
    return df


def config_from_store(root: str, sweep_id: str, overrides: list[str]) -> SweepConfig:
    """The config a sweep ran with (from its manifest), with key=value overrides applied on top."""
    from omegaconf import OmegaConf

    from orchestrator.config import SweepConfig as Schema
    from orchestrator.config import validate

    given = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
    store = SweepStore(root, sweep_id, (given.get("storage") or {}).get("options"))  # type: ignore[union-attr]
    if not store.has("manifest.json"):
        from orchestrator.config import ConfigError

        raise ConfigError(f"no sweep {sweep_id!r} in store {root!r} (no manifest.json); check the name and --root")
    stored = store.read_json("manifest.json")["config"]
    # the store is where the manifest was found; the stored root may have had its credentials masked
    stored.setdefault("storage", {})["root"] = root
    merged = OmegaConf.merge(OmegaConf.structured(Schema), stored, OmegaConf.from_dotlist(list(overrides)))
    _refuse_masked(OmegaConf.to_container(merged, resolve=False))
    return validate(merged)


def _refuse_masked(cfg: object, prefix: str = "") -> None:
    """A value whose credentials manifest.json masked cannot be used again: name it and say how to give it."""
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            _refuse_masked(v, f"{prefix}{k}.")
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            _refuse_masked(v, f"{prefix}{i}.")
    elif isinstance(cfg, str) and MASK in cfg:
        from orchestrator.config import ConfigError

        key = prefix.rstrip(".")
        raise ConfigError(
            f"{key}={cfg!r}: its credentials were masked in manifest.json; give it again, e.g. `{key}=...` on the "
            "command line, or keep credentials in the environment (MLFLOW_TRACKING_USERNAME/PASSWORD, AWS_*, "
            "HF_TOKEN) instead of in URLs"
        )


def rescore(cfg: SweepConfig) -> SweepResult:
    """Recompute metrics, curves and the MLflow view from stored records. Loads no model.

    Models are keyed as the sweep resolved them (manifest.json), not re-resolved: a branch
    that has moved since, or a zoo rebuilt since, must not orphan the stored records.
    """
    store = SweepStore(cfg.storage.root, cfg.sweep.name, cfg.storage.options)
    recorded = recorded_models(store.read_json("manifest.json")) if store.has("manifest.json") else None
    if recorded is not None and not set(cfg.model.sizes) <= set(recorded):
        recorded = None  # sizes added on the command line: resolve them all afresh
    plan, tasks, store = prepare(cfg, recorded)
    check_passes_held(list(cfg.metrics.names), plan, store)
    stored = set(((store.read_json("manifest.json").get("config") or {}).get("metrics") or {}).get("names") or [])
    asked = set(cfg.metrics.names)
    if stored and asked < stored:  # a subset: beside the full results, which (and MLflow) stay as they are
        view = "+".join(sorted(asked))
        log.warning("metrics.names is a subset of the sweep's (%s): results go to views/%s beside the full "
                    "ones, which are left as they are, and MLflow is not changed", ", ".join(sorted(stored)), view)
        return record(cfg, plan, tasks, store, view=view)
    return record(cfg, plan, tasks, store)
