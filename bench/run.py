"""The benchmark suite's one command: `python bench/run.py side-by-side --repeats 3 [--grid add3|demo]`.

Runs orchestrator and lm-evaluation-harness on the same cells in paired,
alternating repeats; fails (exit 1) on any example whose prompt, greedy
generation or exact match differs, naming the cell and the example; prints the
figures and writes them as rows of BENCHMARKS.md's "bench/ suite" section
(machine, date, commit). bench/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import rows as bench_rows  # noqa: E402
from bench import side_by_side as sbs  # noqa: E402


def setup(grid: dict, cache: Path, tracking: str) -> dict:
    """Models, task files, configs and the lm_eval venv: everything before the first timed run (untimed)."""
    lm_eval = sbs.ensure_lmeval_venv()
    missing = [m for m in sbs.ZOO if not (sbs.zoo_dir() / m / "config.json").exists()]
    if missing:
        print(f"bench: building zoo members {missing} (once)", flush=True)
        subprocess.run([str(Path(sys.executable).parent / "orchestrator"), "zoo", "build", *missing], check=True)
    for name, shape in sbs.RANDOM.items():
        sbs.make_random_model(cache / "models" / name, **shape)
    models = sbs.model_paths(cache)
    params = {m: sbs.param_count(p) for m, p in models.items()}
    task_files = sbs.export_tasks(cache, grid["tasks"])
    conf = sbs.write_orchestrator_conf(cache, models, params, task_files)
    include = sbs.write_lmeval_tasks(cache, task_files, grid["prompts"])
    db = cache / "mlflow.db"
    if tracking != "off" and not db.exists():  # the schema is made once, as on a user's machine after a first run
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{db}")
        mlflow.search_experiments()
    return {"lm_eval": lm_eval, "models": models, "params": params, "conf": conf, "include": include, "db": db}


def one_repeat(i: int, grid_name: str, grid: dict, env: dict, cache: Path, tracking: str) -> sbs.Repeat:
    run_dir = cache / "runs" / f"{grid_name}-r{i}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    sweep = f"bench-{grid_name}-{int(time.time())}"
    load0 = os.getloadavg()[0]
    steps = ["orchestrator", "lm_eval"] if i % 2 == 0 else ["lm_eval", "orchestrator"]
    orch = lm = None
    for tool in steps:
        print(f"bench: repeat {i + 1}: {tool} ...", flush=True)
        if tool == "orchestrator":
            orch = sbs.run_orchestrator(run_dir / "orch", env["conf"], list(env["models"]), grid["tasks"],
                                        grid["prompts"], tracking, env["db"], sweep)
            print(f"bench:   orchestrator {orch.wall:.1f} s", flush=True)
        else:
            lm = sbs.run_lmeval(run_dir, env["lm_eval"], env["include"], env["models"], grid["tasks"],
                                grid["prompts"])
            print(f"bench:   lm_eval {lm.wall:.1f} s ({', '.join(f'{m} {s:.0f}' for m, s in lm.per_model.items())})",
                  flush=True)
    assert orch is not None and lm is not None
    df = sbs.orchestrator_rows(orch.store_dir)
    ours = sbs.orchestrator_outputs(df)
    theirs = sbs.lmeval_outputs(lm.out_dir, grid["tasks"], grid["prompts"])
    rep = sbs.Repeat(orch=orch, lm=lm, first=steps[0])
    rep.split = sbs.time_split(orch.wall, orch.timings, df, slots=os.cpu_count() or 1)
    rep.loads = sbs.model_loads(df)
    rep.reloads = sbs.reloads(df)
    rep.throughput = sbs.throughput(df)
    rep.disagreements = sbs.compare(ours, theirs)
    rep.n_examples = len(ours)
    rep.n_cells = len(sbs.cell_exact_match(ours))
    rep.loadavg = max(load0, os.getloadavg()[0])
    print(f"bench:   ratio lm_eval/orchestrator {rep.ratio:.2f}x; {len(rep.disagreements)} disagreement(s) in "
          f"{rep.n_examples} examples", flush=True)
    return rep


def figures(grid_name: str, grid: dict, reps: list[sbs.Repeat], params: dict[str, int]) -> list[tuple[str, str]]:
    """(figure, value) pairs for BENCHMARKS.md and the terminal."""
    n_models = len(params)
    ow = [r.orch.wall for r in reps]
    lw = [r.lm.wall for r in reps]
    ratios = [r.ratio for r in reps]
    out = [("wall time, orchestrator vs lm_eval",
            f"orchestrator {sbs.spread(ow)} s · lm_eval {sbs.spread(lw)} s · lm_eval/orchestrator "
            f"{sbs.spread(ratios, '{:.2f}')}× over {len(reps)} paired repeats (alternating order)")]
    bad = [d for r in reps for d in r.disagreements]
    n, cells = reps[-1].n_examples, reps[-1].n_cells
    if bad:
        out.append(("identical greedy outputs", f"FAILED: {len(bad)} disagreement(s) over {len(reps)} repeats; "
                                                f"first: {bad[0]}"))
    else:
        out.append(("identical greedy outputs",
                    f"yes: {n:,} examples in {cells} cells, every repeat: prompts, generations, exact match equal"))
    med = {k: statistics.median(r.split[k] for r in reps) for k in reps[0].split}
    driver = ["process", "preflight", "plan", "store", "models", "tracking", "startup", "execute", "score",
              "analysis", "other"]
    out.append(("orchestrator wall by phase (s, median)",
                " · ".join(f"{k} {med[k]:.1f}" for k in driver) + f" (of {med['wall']:.1f})"))
    gen = "n/a" if med["generate"] != med["generate"] else f"{med['generate']:.1f}"
    ll = "n/a" if med["score_ll"] != med["score_ll"] else f"{med['score_ll']:.1f}"
    out.append(("orchestrator replicas' work (replica-s, median)",
                f"model load {med['load']:.1f} · inference {med['inference']:.1f} (generation {gen}, "
                f"log-likelihood {ll}) on {int(med['slots'])} slots"))
    out.append(("orchestration overhead (share of wall)",
                f"{100 * med['overhead_share']:.0f}% = 1 − (load + inference) / (wall × {int(med['slots'])} slots); "
                f"driver outside execute {100 * med['driver_share']:.0f}%"))
    order = sorted(params, key=lambda m: params[m])
    held = {m: med.get(f"overhead:{m}", float("nan")) for m in order}
    out.append(("orchestration overhead per model while loaded (share, median)",
                " · ".join(f"{m} {100 * v:.1f}%" for m, v in held.items() if v == v)
                + " = 1 − the model's shard seconds / the replica-seconds it was held loaded and ready"))
    tp = reps[-1].throughput
    lm_ex = {m: statistics.median(tp[m]["examples"] / r.lm.per_model[m] for r in reps) for m in order}
    or_ex = {m: statistics.median(r.throughput[m]["examples_per_s"] for r in reps) for m in order}
    tok = {m: statistics.median(r.throughput[m]["gen_tokens_per_s"] for r in reps) for m in order}
    out.append(("examples/s per model: orchestrator inference / lm_eval invocation",
                " · ".join(f"{m} {or_ex[m]:.0f} / {lm_ex[m]:.0f}" for m in order)))
    out.append(("orchestrator generated tokens/s per model",
                " · ".join(f"{m} ({params[m]:,}) {tok[m]:.0f}" for m in order)))
    loads = reps[-1].loads
    each = ", ".join(f"{m} {loads[m]}" for m in order)
    out.append(("model loads per sweep",
                f"orchestrator {sum(loads.values())} for {n_models} models ({each}"
                f"; {len(grid['tasks']) * len(grid['prompts'])} cells per model), "
                f"{sum(r.reloads for r in reps)} beyond one per replica in {len(reps)} repeats; lm_eval "
                f"{n_models} (one per invocation)"))
    out.append(("machine load", f"1-min load average at start/end of each repeat, max: "
                                f"{', '.join(f'{r.loadavg:.1f}' for r in reps)} (2 cores shared with other work)"))
    out.append(("software", sbs.software()))
    return out


def grid_label(grid_name: str, grid: dict, n_models: int) -> str:
    cells = n_models * len(grid["tasks"]) * len(grid["prompts"])
    return (f"{grid_name}: {n_models} models × {'/'.join(grid['tasks'])} × {'/'.join(grid['prompts'])} "
            f"({cells} cells, {cells * sbs.N_EXAMPLES:,} ex)")


def side_by_side(args: argparse.Namespace) -> int:
    grid = sbs.GRIDS[args.grid]
    cache = sbs.CACHE
    env = setup(grid, cache, args.tracking)
    reps = [one_repeat(i, args.grid, grid, env, cache, args.tracking) for i in range(args.repeats)]
    figs = figures(args.grid, grid, reps, env["params"])
    label = grid_label(args.grid, grid, len(env["params"]))
    print(f"\n{label}")
    for f, v in figs:
        print(f"  {f}: {v}")
    summary = {"grid": label, "figures": dict(figs),
               "repeats": [{"orchestrator_wall": r.orch.wall, "lm_eval_wall": r.lm.wall, "first": r.first,
                            "lm_eval_per_model": r.lm.per_model, "split": r.split, "loads": r.loads,
                            "throughput": r.throughput, "timings": r.orch.timings, "loadavg": r.loadavg,
                            "disagreements": [str(d) for d in r.disagreements[:50]]} for r in reps]}
    (cache / f"summary-{args.grid}.json").write_text(json.dumps(summary, indent=1) + "\n")
    if args.write:
        date = time.strftime("%Y-%m-%d", time.gmtime())
        mach, com = sbs.machine(), sbs.commit()
        rows = [bench_rows.Row(date, mach, com, label, f, v) for f, v in figs]
        md = Path(args.benchmarks)
        md.write_text(bench_rows.upsert(md.read_text() if md.exists() else "# Benchmarks\n", rows))
        print(f"bench: wrote {len(rows)} rows to {md}")
    bad = [d for r in reps for d in r.disagreements]
    if bad:
        print(f"bench: FAILED: {len(bad)} disagreement(s); first ones:", file=sys.stderr)
        for d in bad[:10]:
            print(f"  {d}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("side-by-side", help="orchestrator vs lm-evaluation-harness on the same cells")
    p.add_argument("--repeats", type=int, default=3, help="paired repeats, alternating which tool goes first")
    p.add_argument("--grid", choices=sorted(sbs.GRIDS), default="add3",
                   help="add3: 7 models x add_3 x zero-shot; demo: 7 models x 3 tasks x 2 prompt styles")
    p.add_argument("--tracking", choices=["sqlite", "off"], default="sqlite", help="orchestrator's MLflow tracking")
    p.add_argument("--no-write", dest="write", action="store_false", help="do not write BENCHMARKS.md rows")
    p.add_argument("--benchmarks", default=str(sbs.REPO / "BENCHMARKS.md"), help="the file the rows go to")
    args = parser.parse_args(argv)
    try:
        return side_by_side(args)
    except sbs.BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
