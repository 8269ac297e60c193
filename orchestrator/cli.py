"""The `orchestrator` command: run, resume, plan, zoo, ui, rescore, report, judge, submit, status, logs, stop.

    orchestrator run experiment=demo                 run (or resume) the demo sweep
    orchestrator resume demo --root results          run a stored sweep's missing and failed shards again
    orchestrator run experiment=demo 'model.sizes=[zoo-3k,zoo-300k]' 'task=[add_3]' 'prompt=[zero_shot]'
    orchestrator plan experiment=demo                cells, shards, examples, and which shards are done
    orchestrator run --info / run experiment=demo --cfg job   config groups and options / the resolved config
    orchestrator zoo build                           train the embedded model family (CPU, minutes)
    orchestrator ui                                  open the MLflow UI on the tracking store
    orchestrator sync demo --root results            bring MLflow up to date from the store (after an outage)
    orchestrator submit experiment=demo cluster=ray storage.root=s3://bucket/orch
                                                     run the sweep as a Ray job (address: --address,
                                                     cluster.dashboard or RAY_ADDRESS) and return
    orchestrator status demo storage.root=s3://bucket/orch   shards done / missing, the job's state
    orchestrator logs demo ... / orchestrator stop demo ...   the latest submitted job's logs / stop it
    orchestrator judge path/to/modified_arithmetic/results --family 'BIG-G T=0' --out judged/
                                                     verdicts + mirage table for published scores
    orchestrator judge lm_eval_out/ --params sizes.csv analysis.min_effect=0.05
                                                     ... for lm-evaluation-harness results files

For run, plan and ui, everything after the subcommand is a Hydra override
(key=value, group=option, 'group=[a,b]', +new.key=value); rescore and report take
key=value overrides of the stored config. Bad input exits with code 2 and a message that
names the field, the value and the fix.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.secrets import install_log_filter, redact_text

EXIT_BAD_INPUT = 2
EXIT_FAILED_SHARDS = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class UserError(Exception):
    """Bad input: print the message, exit 2, write nothing."""


def _load(args: argparse.Namespace):
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from orchestrator.config import ConfigError, load

    try:
        cfg = load(args.overrides, Path(args.config_dir) if args.config_dir else None)
        if getattr(args, "preflight", False):  # `run`: store writable, cluster and tracking answer, context fits
            from orchestrator.preflight import preflight

            preflight(cfg)
        return cfg
    except (HydraException, OmegaConfBaseException, ConfigError) as e:
        raise UserError(_explain(e)) from e


def _explain(e: BaseException) -> str:
    """Hydra wraps the useful message (full key, expected type) in __cause__: show both."""
    parts = [str(e).strip()]
    cause = e.__cause__
    while cause is not None:
        text = str(cause).strip()
        if text and text not in parts[-1]:
            parts.append(text)
        cause = cause.__cause__
    return "\n".join(parts)


def _prepare(cfg):
    from orchestrator.config import ConfigError
    from orchestrator.sweep import prepare
    from orchestrator.tasks.errors import TaskError

    try:
        return prepare(cfg)
    except (TaskError, ConfigError) as e:
        raise UserError(str(e)) from e


def cmd_run(args: argparse.Namespace) -> int:
    if not args.overrides and not args.config_dir and not args.yes:
        return _bare_run()
    cfg = _load(args)
    if not args.quiet:
        print(f"sweep {cfg.sweep.name}: {len(cfg.model.sizes)} sizes x {len(cfg.tasks)} tasks x "
              f"{len(cfg.prompts)} prompt styles -> store {redact_text(cfg.storage.root)}/{cfg.sweep.name}")
    return _run_and_summarise(cfg, args.quiet)


ZOO_MINUTES = "about 4-5 minutes on 2 CPU cores for the whole family"  # README's measured figure


def _bare_run() -> int:
    """`orchestrator run` with nothing after it: say what the default sweep would do (and that it may train the zoo
    first, for minutes) and how to pick an experiment; run nothing, exit 2. `--yes` runs it."""
    from orchestrator import grammar
    from orchestrator.config import conf_dir, load

    lines = []
    try:
        cfg = load([])
    except Exception as e:  # the default tree itself is broken: say so, the listing below still helps
        lines.append(f"the default config does not load: {redact_text(_explain(e))}")
    else:
        sizes, tasks, prompts = list(cfg.model.sizes), sorted(cfg.tasks), sorted(cfg.prompts)
        n = len(sizes) * len(tasks) * len(prompts)
        lines.append(
            f"`orchestrator run` with nothing after it would run the default sweep {cfg.sweep.name!r}: "
            f"{len(sizes)} sizes ({', '.join(sizes)}) x {len(tasks)} tasks ({', '.join(tasks)}) x {len(prompts)} "
            f"prompt styles ({', '.join(prompts)}) = {n} cells, into store {redact_text(cfg.storage.root)}/"
            f"{cfg.sweep.name} and MLflow {redact_text(cfg.tracking.uri)} (relative paths: in {Path.cwd()})")
        if cfg.model.build == "zoo":
            missing = [s for s in sizes if not (Path(os.path.expanduser(cfg.model.catalog[s].path))
                                               / "config.json").exists()]
            if missing:
                where = Path(os.path.expanduser(cfg.model.catalog[missing[0]].path)).parent
                lines.append(f"first it would train the zoo members not built yet ({', '.join(missing)}) into "
                             f"{where}: {ZOO_MINUTES}, once")
    lines.append("nothing was run. Pick an experiment:")
    try:
        with grammar.open_tree(conf_dir(), []) as tree:
            exps = tree.experiments()
    except Exception:
        exps = []
    width = max((len(n) for n, _ in exps), default=0) + len("orchestrator run experiment=") + 2
    lines.extend(f"  {'orchestrator run experiment=' + n:<{width}}{c}" for n, c in exps)
    lines.append("change any part with overrides (orchestrator run experiment=demo 'task=[add_3]'); see the grid, "
                 "its cost and what is done with `orchestrator plan experiment=demo`; the config groups and options: "
                 "`orchestrator run --info`; run the default sweep anyway: `orchestrator run --yes`")
    print("\n".join(lines))
    return EXIT_BAD_INPUT


def cmd_cfg(args: argparse.Namespace) -> int:
    """`--cfg job`: the resolved config as YAML, credentials masked; nothing runs, nothing is checked remotely."""
    from omegaconf import OmegaConf

    from orchestrator.config import to_container
    from orchestrator.secrets import redact

    args.preflight = False
    cfg = _load(args)
    print(redact_text(OmegaConf.to_yaml(redact(to_container(cfg)))), end="")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """`--info`: the config groups and their options, the defaults and the experiments (searchpath included)."""
    from orchestrator import grammar
    from orchestrator.config import conf_dir

    d = (Path(args.config_dir) if args.config_dir else conf_dir()).resolve()
    if not (d / "config.yaml").exists():
        raise UserError(f"config tree not found: {d}/config.yaml; set ORCHESTRATOR_CONF or --config-dir")
    with grammar.open_tree(d, args.overrides) as tree:
        print(grammar.info(tree))
    return 0


def refuse_multirun() -> None:
    from orchestrator.grammar import WHY_ONE_PROCESS

    raise UserError(f"-m/--multirun is not used here: {WHY_ONE_PROCESS}. Give the axes as lists instead and drop -m, "
                    "e.g. orchestrator run experiment=demo 'task=[add_2,add_3]' 'prompt=[zero_shot,k_shot]' "
                    "'model.sizes=[zoo-3k,zoo-300k]'; two different configurations: two runs, each with its own "
                    "sweep.name")


def cmd_resume(args: argparse.Namespace) -> int:
    """Run a stored sweep again from its manifest: only its missing and failed shards run, into its MLflow runs."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from orchestrator.config import ConfigError
    from orchestrator.sweep import config_from_store
    from orchestrator.tasks.errors import TaskError

    try:
        cfg = config_from_store(args.root, args.sweep, args.overrides)
    except (HydraException, OmegaConfBaseException, ConfigError, TaskError) as e:
        raise UserError(_explain(e)) from e
    if cfg.sweep.name != args.sweep:
        raise UserError(f"{redact_text(args.root)}/{args.sweep}/manifest.json is the sweep {cfg.sweep.name!r} (a "
                        f"copied folder?): resuming it would write to {cfg.sweep.name!r}; pass "
                        f"sweep.name={args.sweep} to resume this folder under its own name")
    if not args.quiet:
        print(f"resuming sweep {args.sweep} from {redact_text(args.root)}/{args.sweep}: shards in the store are "
              "kept, only missing and failed ones run")
    return _run_and_summarise(cfg, args.quiet)


def _run_and_summarise(cfg, quiet: bool) -> int:
    """Run (or resume) the sweep; bad input exits 2, Ctrl-C 130 with the resume command, else the summary's code."""
    from orchestrator.config import ConfigError
    from orchestrator.execute import ClusterUnusable
    from orchestrator.sweep import run
    from orchestrator.tasks.errors import TaskError

    try:
        result = run(cfg, progress=not quiet)
    except (TaskError, ConfigError) as e:
        raise UserError(str(e)) from e
    except KeyboardInterrupt:
        return _interrupted(cfg)
    except ClusterUnusable as e:
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        return EXIT_FAILED_SHARDS
    finally:
        from orchestrator.execute import shutdown

        shutdown()
    return _summary(cfg, result)


def _interrupted(cfg) -> int:
    """Ctrl-C: the replicas are stopped (Ray with them); finished shards are in the store. Say so and how to go on."""
    from orchestrator.analysis.partial import resume_command
    from orchestrator.store import SweepStore

    try:
        n = len(SweepStore(cfg.storage.root, cfg.sweep.name, cfg.storage.options).done())
        kept = f"{n} finished shards are in the store"
    except Exception:  # the store itself may be what hung
        kept = "finished shards are in the store"
    print(f"\ninterrupted: {kept}; nothing finished is lost. Resume with: "
          f"{resume_command(cfg.sweep.name, cfg.storage.root)}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _summary(cfg, result) -> int:
    """What `run` and `resume` print when the sweep ends: cells, shards, verdicts, where things are, and, for
    a partial sweep, each incomplete cell with why and the exact command that resumes it. Returns the exit code."""
    from orchestrator.analysis.partial import headline, resume_command
    from orchestrator.sweep import cells_table

    table = cells_table(result.cells)
    if not table.empty:
        with _pd_options():
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"\nshards: {result.shards_run} run, {result.shards_skipped} already in the store, "
        f"{len(result.failed)} failed; {result.seconds:.1f} s"
        + (f", {result.examples_per_second:.1f} examples/s" if result.shards_run else "")
    )
    if getattr(result, "worker_logs", ""):
        print(f"model workers' output (kept out of the progress bar): {result.worker_logs}")
    if result.failed:
        for sid, err in sorted(result.failed.items()):
            print(f"FAILED shard {sid}: {redact_text(err)}", file=sys.stderr)
    if result.partial:
        print(f"\n{headline(result.partial, len(result.plan.cells))} (left out of the curves; verdicts on curves "
              "that lack them are at most borderline):")
        for p in result.partial:
            print(f"  {redact_text(p.describe())}")
        print(f"resume (runs only the missing and failed shards): "
              f"{resume_command(result.plan.sweep_id, cfg.storage.root)}")
    _print_analysis(result, cfg)  # last: the answer and where everything is
    return EXIT_FAILED_SHARDS if result.failed or result.partial else 0


def _print_analysis(result, cfg=None) -> None:
    """The answer, last on screen: the headline, the emergent curves with their reasons (the other verdicts
    counted; every row with its reason is in verdicts.csv), then where everything is: report, store, curves,
    MLflow and the exact `orchestrator ui` command that opens this sweep's runs (with `cfg`)."""
    import shlex
    from collections import Counter

    from orchestrator.analysis.report import emergent_verdicts, mirage_headline

    a = result.analysis
    out = Path(result.report).parent if result.report else None
    if a is not None and a.verdicts:
        emergent = emergent_verdicts(a.verdicts)
        rest = Counter(v.label for v in a.verdicts if v.label != "emergent")
        print(f"\nmirage check: {a.summary}")
        print(f"\n{mirage_headline(a.verdicts, a.mirage)}")
        if emergent:
            print(f"emergent ({len(emergent)} of {len(a.verdicts)} curves), with why:")
            for v in emergent:
                print(f"  {v.key} ({v.kind}, {v.confidence}): {v.reason}")
        counts = ", ".join(f"{n} {label}" for label, n in sorted(rest.items()))
        print(f"{'the other ' if emergent else ''}{sum(rest.values())} curves: {counts or 'none'}"
              + (f"; every verdict with its reason: {out / 'verdicts.csv'}" if out else ""))
    print()
    if result.report:
        print(f"report: {result.report}")
    if cfg is None:
        return
    print(f"store:  {redact_text(cfg.storage.root)}/{result.plan.sweep_id}")
    print(f"curves: {Path(cfg.sweep.output_dir) / result.plan.sweep_id / 'curves'}")
    if not (cfg.tracking.enabled and result.parent_run_id):
        return
    uri = cfg.tracking.uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):  # relative to this folder: make it exact
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    elif "://" not in uri and not uri.startswith("databricks"):  # a plain folder (mlruns)
        uri = str(Path(uri).resolve())
    print(f"mlflow: {redact_text(cfg.tracking.uri)}  (experiment {cfg.tracking.experiment or result.plan.sweep_id}, "
          f"run {result.parent_run_id})")
    print(f"open this sweep in MLflow: orchestrator ui {shlex.quote('tracking.uri=' + redact_text(uri))}")


def _pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 30)


def cmd_plan(args: argparse.Namespace) -> int:
    cfg = _load(args)
    plan, tasks, store = _prepare(cfg)
    from orchestrator.cost import assumption_for, device_kind, estimate, fmt_hours, measure

    done = store.done()
    device = device_kind(cfg.backend.device, cfg.cluster.gpus_per_model)
    cost = estimate(plan, tasks, assumption_for(device, cfg.backend.batch_size),
                    measure(_measured_rows(plan, store, done), plan, device), max_length=cfg.backend.max_length)
    hours = f"{device}-h"
    print(f"sweep {plan.sweep_id}  fingerprint {plan.fingerprint}  store {redact_text(store.url)}")
    print(f"{'model':<16}{'params':>14}  {'task':<22}{'prompt':<14}{'examples':>9}{'shards':>8}{'done':>6}"
          f"{hours:>10}  {'basis':<9}cell")
    for c, cc in zip(plan.cells, cost.cells, strict=True):
        shards = plan.shards_of(c.id)
        n_done = sum(s.id in done for s in shards)
        print(f"{c.model.name:<16}{c.model.params:>14,}  {c.task:<22}{c.prompt.name:<14}{c.n_examples:>9}"
              f"{len(shards):>8}{n_done:>6}{fmt_hours(cc.hours):>10}  {cc.basis:<9}{c.id}")
    total_done = sum(s.id in done for s in plan.shards)
    examples = sum(s.size for s in plan.shards)
    print(f"\n{len(plan.cells)} cells, {len(plan.shards)} shards ({total_done} done, "
          f"{len(plan.shards) - total_done} to run), {examples} examples")
    print(f"estimated {fmt_hours(cost.total_hours)} {hours} in all, "
          f"{fmt_hours(cost.remaining_seconds(plan, done) / 3600)} {hours} for the "
          f"{len(plan.shards) - total_done} shards to run; an estimate: 2 x params x tokens, measured throughput "
          f"for {cost.measured_cells} of {len(plan.cells)} cells, the rest assume {cost.assumption.note} "
          "(orchestrator/cost.py)")
    if args.shards:
        for s in plan.shards:
            print(f"{s.id}  cell {s.cell_id}  examples [{s.start}, {s.stop})  {'done' if s.id in done else 'todo'}")
    return 0


MEASURED_SHARDS = 4  # finished shards read per (model, style kind) to measure throughput: enough, and cheap


def _measured_rows(plan, store, done: set[str]) -> list[dict]:
    """Rows of a few finished shards of each (model, style kind), for `cost.measure` (the store read stays here)."""
    from orchestrator.cost import style_kind

    picked: dict[tuple[str, str], list[str]] = {}
    for c in plan.cells:
        group = picked.setdefault((c.model.name, style_kind(c.prompt.config)), [])
        group.extend(s.id for s in plan.shards_of(c.id) if s.id in done)
    ids = [sid for group in picked.values() for sid in group[:MEASURED_SHARDS]]
    return store.read_shards(ids).to_dict("records") if ids else []


def cmd_zoo(args: argparse.Namespace) -> int:
    from orchestrator import zoo

    out = Path(args.dir).expanduser() if args.dir else zoo.zoo_dir()
    if args.action == "build":
        paths = zoo.build(out_dir=out, names=args.names or None, force=args.force, progress=True)
        for p in paths:
            print(p)
        return 0
    for name in zoo.known_names():
        card = out / name / "model_card.json"
        # stale: built from another spec (a sweep refuses it; `zoo build <name>` retrains it)
        state = "built" if zoo.is_built(out, [name]) else "stale" if card.exists() else "missing"
        print(f"{name:<18} {state:<8} {out / name}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    cfg = _load(args)
    uri = cfg.tracking.uri
    if uri.startswith(("http://", "https://", "databricks")):  # a server already is the UI; nothing to start
        from orchestrator.config import ConfigError
        from orchestrator.preflight import check_tracking_reachable

        try:
            check_tracking_reachable(uri)  # `tracking=server` with no server running: say so, not "open it"
        except ConfigError as e:
            raise UserError(str(e)) from e
        print(f"tracking.uri={redact_text(uri)} is a tracking server: open {redact_text(uri)} in a browser (from "
              "a laptop, tunnel to it first, e.g. `ssh -L 5000:127.0.0.1:5000 head-node`)")
        return 0
    store = _local_tracking_store(uri)
    if store is not None and not store.exists():  # `mlflow ui` would create an empty one and show nothing
        raise UserError(_no_tracking_store(uri, store, cfg.storage.root))
    _check_port(args.host, args.port)
    exe = shutil.which("mlflow")
    if exe is None:
        raise UserError("the `mlflow` command is not on PATH; install mlflow in this environment")
    exact = uri if store is None else f"sqlite:///{store}" if uri.startswith("sqlite:") else str(store)
    cmd = [exe, "ui", "--backend-store-uri", exact, "--host", args.host, "--port", str(args.port)]
    print("running:", redact_text(" ".join(cmd)))
    return subprocess.call(cmd)


def _local_tracking_store(uri: str) -> Path | None:
    """The absolute file (sqlite:///) or folder (a path, file://) of a local MLflow store; None for anything else."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).expanduser().resolve()  # sqlite:////abs -> /abs; sqlite:///rel -> cwd
    if uri.startswith("file://"):
        return Path(uri[len("file://"):]).expanduser().resolve()
    if "://" not in uri and not uri.startswith("databricks"):
        return Path(uri).expanduser().resolve()
    return None


def _no_tracking_store(uri: str, store: Path, root: str) -> str:
    """Why `ui` refuses a store that is not there, and the exact commands that open the sweeps this store has."""
    import json
    import shlex

    found: list[str] = []
    local_root = root[len("file://"):] if root.startswith("file://") else root if "://" not in root else None
    if local_root is not None:
        for manifest in sorted(Path(local_root).expanduser().glob("*/manifest.json")):
            try:
                t = json.loads(manifest.read_text()).get("config", {}).get("tracking", {})
            except (OSError, ValueError, AttributeError):
                continue
            other = _local_tracking_store(str(t.get("uri") or ""))
            if t.get("enabled", True) and other is not None and other.exists():
                scheme = "sqlite:///" if str(t.get("uri")).startswith("sqlite:") else ""
                found.append(f"{manifest.parent.name}: orchestrator ui "
                             + shlex.quote(f"tracking.uri={scheme}{other}"))
    where = ("; sweeps in store " + redact_text(root) + " logged elsewhere, open them with: " + "; ".join(found)
             if found else "; run it in the folder the sweep ran in, or give the sweep's own store as its run "
             "printed at the end, with an absolute path: orchestrator ui 'tracking.uri=sqlite:////abs/path/mlflow.db'")
    return (f"tracking.uri={redact_text(uri)}: {store} does not exist, so no sweep logged there (a sweep run "
            f"in another folder, or with its own tracking.uri, logged elsewhere); `mlflow ui` would create an empty "
            f"store and show nothing{where}")


def _check_port(host: str, port: int) -> None:
    """A taken port fails here, with the fix: `mlflow ui` logs the error and still exits 0."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closing socket is no clash
        try:
            s.bind((host, port))
        except OSError as e:
            with socket.socket() as free:
                free.bind((host, 0))
                other = free.getsockname()[1]
            raise UserError(f"--port {port}: {host}:{port} is taken ({e.strerror}; another `orchestrator ui` or "
                            f"`mlflow ui`?): open http://{host}:{port} if that is this store's UI, or pass "
                            f"--port {other}") from e


def cmd_rescore(args: argparse.Namespace) -> int:
    """Rebuild scores, curves, report and MLflow from the store: no model is loaded."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from orchestrator.config import ConfigError
    from orchestrator.sweep import cells_table, config_from_store, rescore
    from orchestrator.tasks.errors import TaskError

    try:
        cfg = config_from_store(args.root, args.sweep, args.overrides)
        if cfg.sweep.name != args.sweep:  # a copied folder: report the folder asked for, under its own name
            print(f"note: {redact_text(args.root)}/{args.sweep}/manifest.json was written by sweep "
                  f"{cfg.sweep.name!r}; reading and reporting this folder as {args.sweep!r}", file=sys.stderr)
            cfg.sweep.name = args.sweep
        result = rescore(cfg)
    except (HydraException, OmegaConfBaseException, ConfigError, TaskError) as e:
        raise UserError(_explain(e)) from e
    with _pd_options():
        print(cells_table(result.cells).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    _print_analysis(result)
    print(f"\n{len(result.cells)} cells rescored from {redact_text(args.root)}/{args.sweep}; "
          f"curves in {result.report.parent / 'curves' if result.report else '?'}")
    if result.parent_run_id:
        print(f"mlflow: {redact_text(cfg.tracking.uri)} run {result.parent_run_id}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Bring the MLflow view up to date from the store (after a tracking outage); what is there is not logged
    twice (runs are found by tag, a cell's metrics by their digest). Exit 1 while MLflow is still unreachable."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from orchestrator.config import ConfigError
    from orchestrator.sweep import config_from_store, rescore
    from orchestrator.tasks.errors import TaskError

    try:
        cfg = config_from_store(args.root, args.sweep, args.overrides)
        if not cfg.tracking.enabled:
            raise ConfigError("tracking.enabled=false: nothing to sync; give tracking.enabled=true tracking.uri=...")
        result = rescore(cfg)
    except (HydraException, OmegaConfBaseException, ConfigError, TaskError) as e:
        raise UserError(_explain(e)) from e
    if result.parent_run_id is None:
        print(f"error: MLflow at {redact_text(cfg.tracking.uri)} is still unreachable; run this again when it is "
              "back (the store has the results)", file=sys.stderr)
        return EXIT_FAILED_SHARDS
    print(f"mlflow: {redact_text(cfg.tracking.uri)} run {result.parent_run_id} up to date with "
          f"{len(result.cells)} cells from {redact_text(args.root)}/{args.sweep}")
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    """Verdicts, mirage table and report for published scores.

    Reads BIG-bench results files, lm-evaluation-harness results files (both
    formats; scales from --params), per-subtask accuracy CSVs (the Pythia
    evals' layout) or a long CSV, and judges them with `report`'s analysis
    settings (key=value overrides after the source).
    """
    from orchestrator.analysis.report import analyse

    cfg, x = _judge_analysis(args)
    chance = _judge_chance(args.chance or [])
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder for verdicts.csv, mirage.csv and report.html")
    kind, n_files, ext = load_published(args.source, params=args.params, x=x, shots=args.shots, chance=chance,
                                        family=args.family)
    if not ext.curves:
        left = f"; metrics left out (not metrics this project maps): {', '.join(ext.skipped_metrics)}" \
            if ext.skipped_metrics else ""
        raise UserError(f"{args.source}: no scores left (--family {args.family!r}, --shots {args.shots}){left}")
    analysis = analyse(ext.curves, cfg)
    x_label = ext.curves[0].x_label
    print(f"{len(ext.curves)} curves from {n_files} file(s)" +
          (f"; left out metrics: {', '.join(ext.skipped_metrics)}" if ext.skipped_metrics else ""))
    print(f"read as {_JUDGE_KINDS[kind]}, against {x_label}")
    table = analysis.verdict_table.copy()
    table["transition"] = [_fmt_x(v, x_label) for v in table["transition_scale"]]
    cols = [c for c in ("task", "prompt", "metric", "label", "confidence", "emergence_score", "baseline",
                        "transition") if c in table.columns]
    with _pd_options():
        print("\nverdicts:")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        if not analysis.mirage.empty:
            print("\nmirage table:")
            print(analysis.mirage[["task", "prompt", "flag"]].to_string(index=False))
    print(f"\nmirage check: {analysis.summary}")
    if args.out:
        from orchestrator.analysis.report import build_report

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        analysis.verdict_table.to_csv(out / "verdicts.csv", index=False)
        analysis.mirage.to_csv(out / "mirage.csv", index=False)
        report = build_report(ext.curves, analysis.verdicts, analysis.mirage, analysis.comparison, None,
                              out / "report.html", title=f"Published scores: {args.source}",
                              figures_dir=out / "figures")
        print(f"report: {report}")
    return 0


def load_published(source: str, params: str | None = None, x: str | None = None, shots: int | None = None,
                   chance: dict[str, float] | None = None, family: str | None = None):
    """(kind, number of files, External) for the published scores at `source`: what `judge` analyses.

    `params` is the scale table (a path or URL) that lm-eval results and per-subtask CSVs need;
    `x` the scale (None: each format's default). Bad input raises UserError naming file and field.
    """
    from orchestrator.analysis import external as ex
    from orchestrator.metrics import available, get
    from orchestrator.scoring import metric_info

    try:
        kind, files = _judge_read(source)
        if kind == "bigbench":
            ext = ex.curves_from_bigbench(files, family=family, shots=shots, x=x or "non_embedding_params")
        elif kind == "lmeval":
            scales, where = _judge_scales(source, params, "lm-evaluation-harness results files")
            ext = ex.curves_from_lmeval(files, scales, x=x or "params", shots=shots, chance=chance,
                                        scale_source=where)
        elif kind == "subtask_csv":
            scales, where = (None, "") if x == "train_step" and not params else \
                _judge_scales(source, params, "per-subtask CSVs read at each model's final checkpoint")
            ext = ex.curves_from_subtask_csv(files, scales, x=x or "params", shots=shots, chance=chance,
                                             scale_source=where)
        else:
            if len(files) > 1:
                raise UserError(f"{source}: {len(files)} long CSVs; judge one at a time")
            best = {n: get(n).best for n in available()}
            ext = ex.curves_from_csv(files[0][1], files[0][0], metric_info(available()), best, x=x or "params")
    except ex.ExternalDataError as e:
        raise UserError(f"{source}: {e}" if source not in str(e) else str(e)) from e
    except UnicodeDecodeError as e:
        raise UserError(f"{source}: a file is not UTF-8 text ({e})") from e
    except (OSError, ValueError) as e:  # missing path, unknown protocol, no network, bad gzip, ...
        raise UserError(f"{source}: cannot read it ({type(e).__name__}: {e})") from e
    return kind, len(files), ext


_JUDGE_KINDS = {"bigbench": "BIG-bench results", "lmeval": "lm-evaluation-harness results",
                "subtask_csv": "per-subtask accuracy CSV", "long_csv": "long CSV"}


def _fmt_x(v: float, x_label: str) -> str:
    import math

    from orchestrator.analysis.verdicts import format_params

    if v is None or not isinstance(v, float | int) or not math.isfinite(v):
        return ""
    return f"{v:.3g}" if "FLOP" in x_label else format_params(float(v))


def _judge_analysis(args: argparse.Namespace):
    """AnalysisConfig from `analysis.key=value` overrides (as `report` takes them), and the scale to read.

    --x and analysis.x name the same thing; given both, they must agree.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from orchestrator.config import AnalysisConfig

    items = []
    for o in args.overrides:
        key, eq, _ = o.partition("=")
        if not eq or not key.startswith("analysis.") or len(key) == len("analysis."):
            raise UserError(
                f"{o!r}: judge takes analysis settings as key=value, e.g. analysis.min_effect=0.05 "
                "(the fields of AnalysisConfig in orchestrator/config.py)"
            )
        items.append(o[len("analysis."):])
    try:
        merged = OmegaConf.merge(OmegaConf.structured(AnalysisConfig), OmegaConf.from_dotlist(items))
        cfg = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError) as e:  # ValueError: AnalysisConfig refuses a threshold
        raise UserError("analysis override: " + _explain(e)) from e
    x = args.x
    if any(i.startswith("x=") for i in items):
        if x is not None and x != cfg.x:
            raise UserError(f"--x {x} and analysis.x={cfg.x} disagree; give one")
        x = cfg.x
    return cfg, x


def _judge_chance(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        task, eq, value = item.rpartition("=")
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not eq or not task or not 0 <= v <= 1:
            raise UserError(f"--chance {item!r}: give TASK=VALUE with VALUE in [0, 1], e.g. --chance 'mmlu_*=0.25'")
        out[task] = v
    return out


def _judge_scales(source: str, params: str | None, what: str):
    from orchestrator.analysis.external import ExternalDataError, read_scale_table

    if not params:
        raise UserError(
            f"{source}: {what} carry no model sizes: give --params TABLE, a CSV or YAML with columns "
            "model and params (optional: revision, non_embedding_params, train_step, train_flops)"
        )
    try:
        (name, text), = _read_files(params, ("*.csv", "*.yaml", "*.yml"))
    except UserError as e:
        raise UserError(f"--params {e}") from e
    except (OSError, ValueError) as e:
        raise UserError(f"--params {params}: cannot read it ({type(e).__name__}: {e})") from e
    try:
        return read_scale_table(text, name), name
    except ExternalDataError as e:
        raise UserError(f"--params: {e}") from e


def _read_files(url: str, globs: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, text) of `url` itself if it is a file, else of the files below it named like one of `globs`.

    .gz files are decompressed. File names are matched, so brackets or stars in `url` are literal.
    """
    import fnmatch
    import gzip
    import posixpath

    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    fs, path = fsspec.core.url_to_fs(os.path.expanduser(url))
    if fs.isfile(path):
        paths = [path]
    elif fs.isdir(path):
        paths = sorted(p for p in fs.find(path) if any(fnmatch.fnmatchcase(posixpath.basename(p), g) for g in globs))
    else:
        raise UserError(f"{url}: no such file or folder")
    out = []
    for p in paths:
        with fs.open(p, "rb") as f:
            data = f.read()
        if p.endswith(".gz"):
            data = gzip.decompress(data)
        out.append((p if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(p), data.decode("utf-8")))
    return out


def _judge_read(source: str) -> tuple[str, list]:
    """The kind of published scores at `source` and its files: parsed JSON, or CSV text.

    In a folder, BIG-bench's scores_*.json come first, then any *.json (lm-evaluation-harness
    results), then *.csv / *.csv.gz.
    """
    import json

    from orchestrator.analysis.external import is_subtask_csv

    files: list[tuple[str, str]] = []
    for globs in (("scores_*.json",), ("*.json",), ("*.csv", "*.csv.gz")):
        files = _read_files(source, globs)
        if files:
            break
    if not files:
        raise UserError(f"{source}: no BIG-bench results files (scores_*.json), lm-evaluation-harness results "
                        "(*.json) or CSVs (*.csv, *.csv.gz) there")
    if files[0][0].endswith(".json"):
        parsed = []
        for name, text in files:
            try:
                parsed.append((name, json.loads(text)))
            except json.JSONDecodeError as e:
                raise UserError(f"{name}: not valid JSON ({e})") from e
        kinds = {name: "bigbench" if isinstance(d, dict) and "scores" in d and "model" in d
                 else "lmeval" if isinstance(d, dict) and "results" in d else None for name, d in parsed}
        bad = [n for n, k in kinds.items() if k is None]
        if bad:
            raise UserError(f"{bad[0]}: neither a BIG-bench results file ('model' and 'scores') nor an "
                            "lm-evaluation-harness results file ('results')")
        if len(set(kinds.values())) > 1:
            raise UserError(f"{source}: holds both BIG-bench and lm-evaluation-harness results; judge them apart")
        return kinds[parsed[0][0]], parsed
    sub = [is_subtask_csv(text) for _, text in files]
    if all(sub):
        return "subtask_csv", files
    if any(sub):
        raise UserError(f"{source}: holds per-subtask CSVs and other CSVs; judge them apart")
    return "long_csv", files


def _jobs_call(fn, *a, **kw):
    """Call orchestrator.jobs; its JobsError (and a config error) becomes a UserError: exit 2 with the fix."""
    from orchestrator.config import ConfigError
    from orchestrator.jobs import JobsError

    try:
        return fn(*a, **kw)
    except (JobsError, ConfigError) as e:
        raise UserError(str(e)) from e


def cmd_submit(args: argparse.Namespace) -> int:
    """Validate here, then hand the sweep to the cluster's Jobs API and return: nothing waits for it."""
    from orchestrator import jobs
    from orchestrator.store import SweepStore, check_root

    cfg = _load(args)  # bad overrides exit 2 before anything is sent
    _jobs_call(check_root, cfg.storage.root, cfg.storage.options)
    _jobs_call(jobs.check_submittable, cfg, args.overrides)
    config_dir = None
    if args.config_dir:
        config_dir = jobs.inside_repo(str(Path(args.config_dir).resolve()), jobs.REPO)
        if config_dir is None:
            raise UserError(f"--config-dir {args.config_dir} is outside {jobs.REPO}, which is what the job "
                            "uploads; put the config tree inside the repo")
    address, where = _jobs_call(jobs.resolve_address, args.address, cfg.cluster.dashboard)
    entry = jobs.entrypoint(args.overrides, config_dir)
    store = SweepStore(cfg.storage.root, cfg.sweep.name, cfg.storage.options)
    env = jobs.runtime_env(cfg)
    job_id = _jobs_call(jobs.submit, address, entry, env, {"sweep": cfg.sweep.name}, quiet=not args.verbose)
    _jobs_call(jobs.record_job, store, job_id, address, entry, next(iter(env["env_vars"].values())))
    print(f"job: {job_id}\nsweep: {cfg.sweep.name}\naddress: {address} (from {where})\n"
          f"store: {redact_text(store.url)}\nfollow it with `orchestrator status {cfg.sweep.name}` (and the same "
          "storage overrides); `orchestrator logs` / `orchestrator stop` likewise")
    return 0


def _job_target(args: argparse.Namespace):
    """(config, store, latest recorded job, Jobs address) for status / logs / stop of `args.sweep`."""
    from orchestrator import jobs
    from orchestrator.store import SweepStore

    cfg = _load(args)
    store = SweepStore(cfg.storage.root, args.sweep, cfg.storage.options)
    if not store.has("manifest.json") and not store.has(jobs.JOBS_FILE):
        raise UserError(f"no sweep {args.sweep!r} in store {redact_text(store.root)} (neither manifest.json nor "
                        f"{jobs.JOBS_FILE}); check the name and give the storage overrides used to submit it")
    job = jobs.recorded_jobs(store)[-1] if store.has(jobs.JOBS_FILE) else None
    address = None
    if job is not None:
        address, _ = _jobs_call(jobs.resolve_address, args.address, cfg.cluster.dashboard, job.get("address"))
    return cfg, store, job, address


def cmd_status(args: argparse.Namespace) -> int:
    from orchestrator import jobs

    _, store, job, address = _job_target(args)
    print(f"sweep {args.sweep}  store {redact_text(store.url)}")
    if store.has("manifest.json"):
        done_ids, failures = store.done(), store.failures()
        cells = jobs.progress(store.read_json("manifest.json"), done_ids, failures)
        print(f"{'model':<16}{'task':<22}{'prompt':<14}{'done':>6}{'failed':>7}{'missing':>8}{'total':>7}  cell")
        for c in cells:
            print(f"{c.model:<16}{c.task:<22}{c.prompt:<14}{c.done:>6}{c.failed:>7}{c.missing:>8}{c.total:>7}  "
                  f"{c.cell_id}")
        done, total = sum(c.done for c in cells), sum(c.total for c in cells)
        n_failed = sum(c.failed for c in cells)
        full = sum(c.done == c.total for c in cells)
        print(f"shards: {done} done, " + (f"{n_failed} failed, " if n_failed else "")
              + f"{total - done - n_failed} missing, {total} total; cells: {full} of {len(cells)} complete")
        for sid, f in sorted(failures.items()):
            if sid not in done_ids:
                print(f"  failed {sid} ({f.get('cell', '?')}) after {f.get('attempts', '?')} attempt(s): "
                      f"{redact_text(str(f.get('error', '?')) + ': ' + str(f.get('message', '')))}")
    else:
        print("no manifest.json yet: the job has not planned the sweep (it is starting, or it failed before)")
    print(_driver_line(store))
    if job is None:
        print("job: none recorded (not submitted with `orchestrator submit`)")
        return 0
    try:
        state = jobs.job_state(address, job["job_id"], args.timeout)
    except jobs.JobsError as e:
        state = f"unknown: {e}"
    print(f"job {job['job_id']}: {state}  (submitted {job.get('submitted_at', '?')} to {address})")
    return 0


def _driver_line(store) -> str:
    """Whether a driver runs the sweep now, from its lease in the store (host, pid, heartbeat)."""
    import time

    from orchestrator.store import DriverLease

    lease = DriverLease(store)
    other = lease._read()
    if other is None:
        return "driver: none running"
    if lease._stale(other):
        return f"driver: none running (the last one, on {other.get('host')} pid {other.get('pid')}, stopped)"
    return (f"driver: running on {other.get('host')} pid {other.get('pid')} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(float(other.get('started', 0))))}, "
            f"heartbeat {time.time() - float(other.get('heartbeat', 0)):.0f} s ago")


def cmd_logs(args: argparse.Namespace) -> int:
    from orchestrator import jobs

    _, store, job, address = _job_target(args)
    if job is None:
        _jobs_call(jobs.latest_job, store)  # raises: no job recorded
    print(_jobs_call(jobs.job_logs, address, job["job_id"]), end="")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from orchestrator import jobs

    _, store, job, address = _job_target(args)
    if job is None:
        _jobs_call(jobs.latest_job, store)  # raises: no job recorded
    if _jobs_call(jobs.stop_job, address, job["job_id"]):
        print(f"job {job['job_id']}: stop requested; shards already in the store stay (submit again to resume)")
    else:
        state = _jobs_call(jobs.job_state, address, job["job_id"])
        print(f"job {job['job_id']}: already {state}, nothing to stop")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="orchestrator",
        description="Run language-model scaling sweeps on Ray, record them in MLflow, read them as curves.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def with_overrides(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=demo 'task=[add_2]'")
        sp.add_argument("--config-dir", default=None, help="config tree (default: the repo's conf/)")
        return sp

    def hydra_flags(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Hydra's own inspection flags, as Hydra users expect them; -m is refused with the reason."""
        sp.add_argument("-c", "--cfg", choices=["job"], default=None,
                        help="print the resolved config as YAML (credentials masked) and exit; nothing runs")
        sp.add_argument("--info", action="store_true",
                        help="list the config groups and their options, the defaults and the experiments, and exit")
        sp.add_argument("-m", "--multirun", action="store_true",
                        help="not used: one process expands the grid (give lists: 'task=[a,b]')")
        return sp

    r = hydra_flags(with_overrides(sub.add_parser("run", help="run or resume a sweep: only missing shards run")))
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    r.add_argument("-y", "--yes", action="store_true",
                   help="run even with no overrides (the default sweep; it may train the zoo first, for minutes)")
    r.set_defaults(func=cmd_run, preflight=True)
    rr = sub.add_parser("resume", help="run a stored sweep's missing and failed shards (from its manifest)")
    rr.add_argument("sweep", help="sweep id (its sweep.name)")
    rr.add_argument("overrides", nargs="*", help="key=value on the stored config, e.g. cluster.num_cpus=4")
    rr.add_argument("--root", default="results", help="the store root the sweep was written to")
    rr.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    rr.set_defaults(func=cmd_resume)
    pl = hydra_flags(with_overrides(sub.add_parser("plan", help="print the grid: cells, shards, examples, done")))
    pl.add_argument("--shards", action="store_true", help="also list every shard")
    pl.set_defaults(func=cmd_plan)
    z = sub.add_parser("zoo", help="the embedded tiny model family trained on this machine")
    z.add_argument("action", choices=["build", "list"])
    z.add_argument("names", nargs="*", help="members to build (default: all)")
    z.add_argument("--dir", default=None, help="zoo folder (default: $ORCHESTRATOR_ZOO_DIR or ~/.cache/...)")
    z.add_argument("--force", action="store_true", help="retrain members that are already built")
    z.set_defaults(func=cmd_zoo)
    for name, text in (("rescore", "recompute metrics for a finished sweep from its stored records (no model)"),
                       ("report", "rebuild curves, report and the MLflow view of a sweep from the store")):
        rs = sub.add_parser(name, help=text)
        rs.add_argument("sweep", help="sweep id (its sweep.name)")
        rs.add_argument("overrides", nargs="*", help="key=value on the stored config, e.g. 'metrics.names=[...]'")
        rs.add_argument("--root", default="results", help="the store root the sweep was written to")
        rs.set_defaults(func=cmd_rescore)
    sy = sub.add_parser("sync", help="bring the MLflow view of a sweep up to date from the store (after a "
                                     "tracking outage); nothing is logged twice")
    sy.add_argument("sweep", help="sweep id (its sweep.name)")
    sy.add_argument("overrides", nargs="*", help="key=value on the stored config, e.g. tracking.uri=http://...")
    sy.add_argument("--root", default="results", help="the store root the sweep was written to")
    sy.set_defaults(func=cmd_sync)
    j = sub.add_parser("judge", help="verdicts and mirage table for published scores (BIG-bench, lm-eval, CSV)")
    j.add_argument("source", help="a file, folder or URL: BIG-bench scores_*.json, lm-evaluation-harness "
                                  "results *.json, per-subtask accuracy *.csv(.gz), or a long CSV")
    j.add_argument("overrides", nargs="*", help="analysis settings as for report, e.g. analysis.min_effect=0.05")
    j.add_argument("--params", default=None, help="scale table (CSV or YAML: model, params [, revision, "
                                                  "non_embedding_params, train_step, train_flops]) for lm-eval "
                                                  "results and per-subtask CSVs")
    j.add_argument("--family", default=None, help="BIG-bench model_family to read, e.g. 'BIG-G T=0'")
    j.add_argument("--shots", type=int, default=None, help="keep one number of shots (default: one curve each)")
    j.add_argument("--chance", action="append", default=None, metavar="TASK=VALUE",
                   help="random-guess score of a task's 0/1 metrics (fnmatch patterns allowed); repeatable")
    j.add_argument("--x", default=None,
                   choices=["params", "non_embedding_params", "train_step", "train_flops", "total_params",
                            "flop_matched_non_embedding_params"],
                   help="the scale: BIG-bench's ModelData fields (default non_embedding_params); a column of "
                        "--params or of the long CSV (default params); train_step reads checkpoints")
    j.add_argument("--out", default=None, help="folder for verdicts.csv, mirage.csv and report.html")
    j.set_defaults(func=cmd_judge)
    address_help = ("Ray Jobs API, e.g. http://HEAD:8265; precedence: --address, cluster.dashboard, "
                    "(status/logs/stop) the address the job was submitted to, RAY_ADDRESS")
    submit_help = ("submit the sweep to a Ray cluster as a job (Ray Jobs API) and return; prints job and sweep "
                   "ids. Needs cluster=ray and a store every node reaches (absolute path or s3:// / gs:// URL). "
                   "Credentials come from the nodes' environment (AWS_*, MLFLOW_TRACKING_PASSWORD, HF_TOKEN, a "
                   "profile or the cloud's identity), never from the job: an override carrying one is refused")
    sb = hydra_flags(with_overrides(sub.add_parser("submit", help=submit_help, description=submit_help)))
    sb.add_argument("--address", default=None, help=address_help)
    sb.set_defaults(func=cmd_submit)
    for name, text, func in (
        ("status", "shards done / missing per cell (from the store) and the submitted job's state", cmd_status),
        ("logs", "the logs of the sweep's latest submitted job", cmd_logs),
        ("stop", "stop the sweep's latest submitted job (finished shards stay in the store)", cmd_stop),
    ):
        js = sub.add_parser(name, help=text + "; overrides: the storage settings used to submit")
        js.add_argument("sweep", help="sweep id (its sweep.name)")
        with_overrides(js)
        js.add_argument("--address", default=None, help=address_help)
        if name == "status":
            js.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the Jobs API")
        js.set_defaults(func=func)
    u = with_overrides(sub.add_parser("ui", help="open the MLflow UI on the sweep's tracking store"))
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=5000)
    u.set_defaults(func=cmd_ui)
    return p


def _stacks_on_usr1() -> None:
    """`kill -USR1 <pid>` prints every thread's stack to stderr: where a sweep that seems hung is waiting."""
    if not hasattr(signal, "SIGUSR1"):
        return
    try:
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True, chain=False)
    except (AttributeError, ValueError, OSError):  # stderr without a file descriptor (called in-process, captured)
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # overrides may come before or after options (`rescore demo --root r k=v`): argparse leaves the
    # later ones unparsed, so collect them here
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    install_log_filter()  # a URL with a password, a token in an error: masked in every log line
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _stacks_on_usr1()
    try:
        if getattr(args, "multirun", False):
            refuse_multirun()
        if getattr(args, "info", False):
            return cmd_info(args)
        if getattr(args, "cfg", None):
            return cmd_cfg(args)
        return args.func(args)
    except UserError as e:
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
