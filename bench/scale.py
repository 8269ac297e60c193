"""Scale benchmark: planning, dispatch and a complete rerun at 1k, 10k and 100k shards. One command:

    python bench/scale.py                      # the series 1000 10000 100000
    python bench/scale.py --shards 1000 10000  # a shorter one
    python bench/scale.py --profile DIR        # also a cProfile of each measured part, per size, in DIR

The grid is one zoo size (zoo-3k, never loaded: `backend.name=echo` runs no model) x the synthetic add_2 task
with n = shards / 2 examples x two prompt styles (zero_shot, three_shot), one example per shard
(`sweep.shard_size=1`), so every shard costs the workers almost nothing and the driver is what is measured.
For each size it reports:

- plan: `make_plan` wall time (tasks loaded, checked and models resolved beforehand, reported apart);
- dispatch: `orchestrator.execute.execute` of every shard on a local Ray started beforehand (its start is
  reported apart), as the driver's main-thread CPU time (the scheduling loop: Ray calls, callbacks; the
  workers run in other processes), the driver process's CPU time (with Ray's own threads) and wall time;
  the replicas write every shard to the store, so the store is complete afterwards;
- rerun: `orchestrator.sweep.run` of the same config (MLflow in a sqlite file in the work folder), which
  finds nothing to do and records the sweep again, twice: the first pass after dispatch meets a store no
  run has recorded (cold: every shard file is checked and read once), the second is the steady state (a
  resume with nothing new). Wall time of each.
- resume (`--resume-share`, default 1%): that share of shards, spread evenly over the cells, is deleted (as if
  they had failed) and `orchestrator.sweep.run` runs them again and records. Measured twice from the same state:
  with the cells' kept shard partials (cache/parts: the resume reads only the shards it ran), and with them
  deleted first (every shard of an affected cell read again, as before incremental scoring). Wall time, the
  `score` phase, and the shard files the record read.

Targets (issue 12): plan + dispatch driver time under 10 s and the complete rerun under 60 s at 100,000
shards, growth linear in shards. It prints one table and, with --markdown, BENCHMARKS.md rows.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def overrides(n_shards: int, work: Path) -> list[str]:
    return [
        "model.sizes=[zoo-3k]",
        "task=[add_2]",
        f"tasks.add_2.n={n_shards // 2}",
        "prompt=[zero_shot,three_shot]",
        "sweep.shard_size=1",
        f"sweep.name=scale-{n_shards}",
        f"sweep.output_dir={work / 'outputs'}",
        "backend.name=echo",
        f"storage.root={work / 'store'}",
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        "tracking.live=false",
    ]


@contextmanager
def profiled(path: Path | None):
    if path is None:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        prof.dump_stats(str(path))


def measure(n_shards: int, work: Path, profile_dir: Path | None, rerun: bool = True,
            rerun_only: bool = False, share: float = 0.01) -> dict[str, float]:
    from orchestrator import config
    from orchestrator.execute import execute, init_ray, shutdown
    from orchestrator.plan import make_plan
    from orchestrator.resolve import resolve_models
    from orchestrator.sweep import load_tasks, worker_store

    def prof(name: str) -> Path | None:
        return profile_dir / f"{n_shards}-{name}.prof" if profile_dir else None

    cfg = config.load(overrides(n_shards, work))
    out: dict[str, float] = {"shards": n_shards}
    if rerun_only:  # the store of an earlier run of this benchmark (--work, --keep): the reruns alone
        reruns(cfg, n_shards, out, prof)
        return resumes(cfg, n_shards, out, prof, share) if share > 0 else out
    t = time.perf_counter()
    tasks = load_tasks(cfg)
    resolved = resolve_models(cfg.model)
    out["tasks_s"] = time.perf_counter() - t
    with profiled(prof("plan")):
        t = time.perf_counter()
        plan = make_plan(cfg, tasks, resolved)
        out["plan_s"] = time.perf_counter() - t
    assert len(plan.shards) == n_shards, len(plan.shards)

    t = time.perf_counter()
    init_ray(cfg)
    out["ray_start_s"] = time.perf_counter() - t
    with profiled(prof("dispatch")):
        w, c, p = time.perf_counter(), time.thread_time(), time.process_time()
        report = execute(plan, tasks, cfg, set(), worker_store(cfg, plan), progress=False)
        out["dispatch_cpu_s"] = time.thread_time() - c
        out["dispatch_process_cpu_s"] = time.process_time() - p
        out["dispatch_wall_s"] = time.perf_counter() - w
    shutdown()
    assert report.completed == n_shards and not report.failed, (report.completed, report.failed)
    out["ray_calls"] = getattr(report, "calls", float("nan"))

    if not rerun:
        return out
    reruns(cfg, n_shards, out, prof)
    return resumes(cfg, n_shards, out, prof, share) if share > 0 else out


def reruns(cfg, n_shards: int, out: dict[str, float], prof) -> dict[str, float]:
    """Two `orchestrator.sweep.run`s of the complete sweep: the first records it (cold caches after a dispatch
    that did not record), the second is the steady state."""
    from orchestrator.sweep import run

    for name in ("rerun_cold", "rerun"):
        with profiled(prof(name)):
            t = time.perf_counter()
            result = run(cfg, progress=False)
            out[f"{name}_s"] = time.perf_counter() - t
        assert result.shards_run == 0 and result.shards_skipped == n_shards, (result.shards_run, result.shards_skipped)
        assert len(result.cells) == len(result.plan.cells), (len(result.cells), len(result.plan.cells))
    return out


def resumes(cfg, n_shards: int, out: dict[str, float], prof, share: float) -> dict[str, float]:
    """A resume after `share` of the shards were lost, with the kept shard partials ("resume") and without them
    ("resume_whole"), from the same state; the complete store is left as it was found."""
    from orchestrator.cellcache import PARTS
    from orchestrator.store import SweepStore
    from orchestrator.sweep import prepare, run

    plan, _, store = prepare(cfg)
    step = max(1, round(1 / share))
    lost = [s.id for s in plan.shards[step // 2::step]]
    reads: list[str] = []
    real = SweepStore.read_shards

    def spy(self, ids, *a, **kw):
        ids = list(ids)
        reads.extend(ids)
        return real(self, ids, *a, **kw)

    SweepStore.read_shards = spy
    try:
        for name in ("resume", "resume_whole"):
            store._entries()
            for sid in lost:
                store.fs.rm(store._shard_path(sid))
            if name == "resume_whole":
                store.fs.rm(f"{store._path}/{PARTS}", recursive=True)
            reads.clear()
            with profiled(prof(name)):
                t = time.perf_counter()
                result = run(cfg, progress=False)
                out[f"{name}_s"] = time.perf_counter() - t
            assert result.shards_run == len(lost) and not result.failed, (result.shards_run, result.failed)
            out[f"{name}_score_s"] = result.timings["phases"].get("score", float("nan"))
            out[f"{name}_reads"] = len(reads)
    finally:
        SweepStore.read_shards = real
    out["resume_lost"] = len(lost)
    return out


COLUMNS = ("shards", "tasks_s", "plan_s", "ray_start_s", "dispatch_cpu_s", "dispatch_process_cpu_s", "dispatch_wall_s",
           "ray_calls", "rerun_cold_s", "rerun_s", "resume_lost", "resume_s", "resume_score_s", "resume_reads",
           "resume_whole_s", "resume_whole_score_s", "resume_whole_reads")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--work", type=Path, default=None, help="folder for stores and MLflow (a temporary one by default)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--profile", type=Path, default=None, help="write cProfile stats of each part here")
    ap.add_argument("--markdown", action="store_true", help="also print BENCHMARKS.md rows")
    ap.add_argument("--no-rerun", action="store_true", help="plan and dispatch only")
    ap.add_argument("--rerun-only", action="store_true", help="the reruns alone, on the stores already in --work")
    ap.add_argument("--resume-share", type=float, default=0.01,
                    help="share of shards lost before the resume measurement (0: no resume)")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    work = args.work or Path(tempfile.mkdtemp(prefix="orchestrator-scale-"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in args.shards:
            rows.append(measure(n, work / str(n), args.profile, rerun=not args.no_rerun, rerun_only=args.rerun_only,
                                share=args.resume_share))
            print("  ".join(f"{k}={rows[-1].get(k, float('nan')):.2f}" if k != "shards" else f"shards={n}"
                            for k in COLUMNS),
                  flush=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + " | ".join(COLUMNS))
    for r in rows:
        print(" | ".join(f"{r[k]:.0f}" if k == "shards" or k.endswith(("_reads", "_lost"))
                         else f"{r.get(k, float('nan')):.2f}" for k in COLUMNS))
    if args.markdown:
        for r in rows:
            print(f"| {time.strftime('%Y-%m-%d')} | A | `python bench/scale.py`: {int(r['shards']):,} shards (echo "
                  f"backend, 1 example each) | plan {r['plan_s']:.2f} s; dispatch {r['dispatch_cpu_s']:.1f} s driver "
                  f"CPU ({r['dispatch_wall_s']:.0f} s wall); complete rerun {r['rerun_s']:.1f} s wall (first after "
                  f"dispatch {r['rerun_cold_s']:.1f} s) |")
            if "resume_s" in r:
                print(f"| {time.strftime('%Y-%m-%d')} | A | `python bench/scale.py`: {int(r['shards']):,} shards, "
                      f"resume after {int(r['resume_lost']):,} lost (spread over the cells) | with kept shard partials "
                      f"{r['resume_s']:.1f} s wall, score {r['resume_score_s']:.1f} s, "
                      f"{int(r['resume_reads']):,} shard files read; without them {r['resume_whole_s']:.1f} s, "
                      f"score {r['resume_whole_score_s']:.1f} s, {int(r['resume_whole_reads']):,} read |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
