"""Orchestrator and lm-evaluation-harness on the same cells, side by side, on this machine.

Both tools get the same models (the zoo plus random-weight GPT-2 models made
here with the zoo's tokenizer), the same JSONL examples and the same prompt
text, greedy decoding with the same budget and stop string. Orchestrator runs
the grid as one sweep (`orchestrator run`, fresh store); lm-evaluation-harness
runs once per model (`lm_eval --model hf`, as its users run it), all of that
model's task x prompt cells in one invocation, from its own venv. The repeats
are paired and alternate which tool goes first.

Same prompt text: orchestrator renders its prompts itself (zero-shot, 3-shot
with its own exemplar draw); lm-evaluation-harness is given that rendered text
per example (a `prompt` field of its JSONL, `doc_to_text: "{{prompt}}"`, 0-shot),
since its own few-shot sampler would draw other exemplars. The comparison checks
the prompts each tool logged, so a difference in framing cannot go unnoticed.

Exact match: orchestrator's lenient one (strip, lower case, trailing
punctuation dropped); lm-evaluation-harness's `exact_match` is configured to the
same rule (`ignore_case`, `regexes_to_ignore` for surrounding space and trailing
punctuation). Any example whose prompt, generation or exact match differs fails
the benchmark (`Disagreement`, exit 1).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
LMEVAL_VENV = BENCH / ".venv-lmeval"
LMEVAL_VERSION = "0.4.13"
TORCH_VERSION = "2.13.0"  # the CPU build on this machine's disk (README)

ZOO = ["zoo-3k", "zoo-10k", "zoo-30k", "zoo-100k", "zoo-300k"]
# random-weight GPT-2 models with the zoo's character tokenizer: ~5M and ~19M parameters
RANDOM = {
    "rand-5m": {"n_embd": 256, "n_layer": 6, "n_head": 4},
    "rand-20m": {"n_embd": 512, "n_layer": 6, "n_head": 8},
}
# orchestrator's synthetic generators, exported once to JSONL: the examples both tools read
TASKS = {
    "add_3": {"generator": "addition", "digits": 3},
    "sub_3": {"generator": "subtraction", "digits": 3},
    "mul_2": {"generator": "multiplication", "digits": 2},
}
PROMPTS = {"zero_shot": 0, "three_shot": 3}  # orchestrator's conf/prompt styles; both max_new_tokens 8
MAX_NEW_TOKENS = 8
STOP = "\n"
N_EXAMPLES = 200
BATCH_SIZE = 32  # orchestrator's backend.batch_size default; lm_eval gets the same

GRIDS = {
    # the first measurement: 7 models x 200 3-digit additions x zero-shot
    "add3": {"tasks": ["add_3"], "prompts": ["zero_shot"]},
    # the demo-size grid: 7 models x 3 tasks x 2 prompt styles
    "demo": {"tasks": list(TASKS), "prompts": list(PROMPTS)},
}


class BenchError(RuntimeError):
    """The benchmark could not run (a tool failed, a file is missing)."""


# --- what both tools are given ----------------------------------------------------------------------------


def zoo_dir() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_ZOO_DIR", Path.home() / ".cache" / "orchestrator" / "zoo"))


def model_paths(cache: Path = CACHE) -> dict[str, Path]:
    return {**{m: zoo_dir() / m for m in ZOO}, **{m: cache / "models" / m for m in RANDOM}}


def make_random_model(path: Path, n_embd: int, n_layer: int, n_head: int, seed: int = 0,
                      n_positions: int = 128) -> Path:
    """A random-weight GPT-2 with the zoo's tokenizer, saved as safetensors (once; reused when there)."""
    if (path / "model.safetensors").exists():
        return path
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from orchestrator.zoo.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def param_count(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        return sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())


def _prod(shape: Iterable[int]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def export_tasks(cache: Path, tasks: list[str]) -> dict[str, Path]:
    """Orchestrator's synthetic tasks as JSONL ({"input", "target"}): the one set of examples both tools read."""
    from orchestrator.config import TaskConfig
    from orchestrator.tasks import load_task

    out = {}
    for name in tasks:
        path = cache / "tasks" / f"{name}.jsonl"
        task = load_task(name, TaskConfig(source="synthetic", n=N_EXAMPLES, seed=0, **TASKS[name]))
        lines = [json.dumps({"input": ex.input, "target": ex.targets[0]}) for ex in task.examples]
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(lines) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        out[name] = path
    return out


def write_orchestrator_conf(cache: Path, models: dict[str, Path], params: dict[str, int],
                            task_files: dict[str, Path]) -> Path:
    """A config folder for `hydra.searchpath`: the model family and one JSONL task yaml per task."""
    conf = cache / "conf"
    (conf / "model").mkdir(parents=True, exist_ok=True)
    (conf / "task").mkdir(parents=True, exist_ok=True)
    lines = ["# written by bench/side_by_side.py", "family: bench", "build: null", "dtype: float32", "catalog:"]
    for name, path in models.items():
        lines.append(f"  {name}: {{path: '{path}', params: {params[name]}}}")
    lines.append(f"sizes: [{', '.join(models)}]")
    (conf / "model" / "bench.yaml").write_text("\n".join(lines) + "\n")
    for name, path in task_files.items():
        (conf / "task" / f"bench_{name}.yaml").write_text(
            f"# @package tasks.bench_{name}\nsource: jsonl\nurl: {path}\ninput_prefix: \"\"\noutput_prefix: \"\"\n")
    return conf


def render_prompts(task_file: Path, name: str, style: str, max_tokens: int = 64) -> list[str]:
    """The exact prompts orchestrator renders for this task file under its conf/prompt/<style>.yaml."""
    from omegaconf import OmegaConf

    from orchestrator.config import PromptConfig, TaskConfig
    from orchestrator.prompts import render
    from orchestrator.tasks import load_task
    from orchestrator.zoo.tokenizer import build_tokenizer

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "prompt" / f"{style}.yaml"))
    pcfg = PromptConfig(**raw)  # type: ignore[arg-type]
    if pcfg.max_new_tokens != MAX_NEW_TOKENS:
        raise BenchError(f"conf/prompt/{style}.yaml has max_new_tokens={pcfg.max_new_tokens}, the bench expects "
                         f"{MAX_NEW_TOKENS}")
    task = load_task(f"bench_{name}", TaskConfig(source="jsonl", url=str(task_file), input_prefix="",
                                                 output_prefix=""))
    tok = build_tokenizer()
    requests = render(task, pcfg, [ex.idx for ex in task.examples],
                      count_tokens=lambda s: len(tok(s)["input_ids"]), max_tokens=max_tokens)
    return [r.prompt for r in requests]


def lmeval_task_name(task: str, prompt: str) -> str:
    return f"bench_{task}_{prompt}"


def write_lmeval_tasks(cache: Path, task_files: dict[str, Path], prompts: list[str]) -> Path:
    """lm-evaluation-harness task YAMLs (for --include_path) over the same examples, with the rendered prompts."""
    out = cache / "lmeval_tasks"
    out.mkdir(parents=True, exist_ok=True)
    for name, path in task_files.items():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for style in prompts:
            rendered = render_prompts(path, name, style)
            data = out / f"{name}.{style}.jsonl"
            data.write_text("".join(json.dumps({**r, "prompt": p}) + "\n" for r, p in zip(rows, rendered,
                                                                                              strict=True)))
            yaml = {
                "task": lmeval_task_name(name, style),
                "dataset_path": "json",
                "dataset_kwargs": {"data_files": {"test": str(data)}},
                "test_split": "test",
                "output_type": "generate_until",
                "doc_to_text": "{{prompt}}",
                "doc_to_target": "{{target}}",
                "generation_kwargs": {"until": [STOP], "max_gen_toks": MAX_NEW_TOKENS, "do_sample": False,
                                      "temperature": 0.0},
                "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                 "ignore_case": True, "ignore_punctuation": False,
                                 "regexes_to_ignore": ["^\\s+", "[\\s.?!;,:]+$"]}],
                "num_fewshot": 0,
                "metadata": {"version": 1.0},
            }
            (out / f"{lmeval_task_name(name, style)}.yaml").write_text(json.dumps(yaml, indent=1) + "\n")
    return out


# --- the lm-evaluation-harness venv -----------------------------------------------------------------------


def ensure_lmeval_venv(venv: Path = LMEVAL_VENV) -> Path:
    """bench/.venv-lmeval with lm_eval[hf]==0.4.13, torch's local CPU build first, transformers as ours."""
    lm_eval = venv / "bin" / "lm_eval"
    if lm_eval.exists():
        return lm_eval
    import transformers

    print(f"bench: creating {venv} (lm_eval {LMEVAL_VERSION}; once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={TORCH_VERSION}"], check=True)
    subprocess.run([*pip, f"lm_eval[hf]=={LMEVAL_VERSION}", f"transformers=={transformers.__version__}"],
                   check=True)
    return lm_eval


# --- running each tool ------------------------------------------------------------------------------------


@dataclass
class OrchRun:
    wall: float
    out_dir: Path  # sweep.output_dir/<sweep>
    store_dir: Path  # storage.root/<sweep>
    timings: dict


@dataclass
class LmRun:
    wall: float  # all invocations
    per_model: dict[str, float]
    out_dir: Path


def run_orchestrator(run_dir: Path, conf: Path, models: list[str], tasks: list[str], prompts: list[str],
                     tracking: str, mlflow_db: Path, sweep: str) -> OrchRun:
    """One `orchestrator run` of the grid into a fresh store; its wall time includes Python and Ray start-up."""
    orch = Path(sys.executable).parent / "orchestrator"
    args = [str(orch), "run", "-q", f"hydra.searchpath=[file://{conf}]", "model=bench",
            f"model.sizes=[{','.join(models)}]", f"task=[{','.join('bench_' + t for t in tasks)}]",
            f"prompt=[{','.join(prompts)}]", "metrics.names=[exact_match]", f"sweep.name={sweep}",
            f"storage.root={run_dir / 'results'}", f"sweep.output_dir={run_dir / 'outputs'}",
            f"backend.batch_size={BATCH_SIZE}"]
    if tracking == "off":
        args.append("tracking=off")
    else:
        args += ["tracking=sqlite", f"tracking.uri=sqlite:///{mlflow_db}"]
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=run_dir, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (run_dir / "orchestrator.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BenchError(f"orchestrator run failed (exit {proc.returncode}); log: {run_dir / 'orchestrator.log'}\n"
                         + (proc.stdout + proc.stderr)[-3000:])
    out_dir = run_dir / "outputs" / sweep
    tpath = out_dir / "timings.json"
    timings = json.loads(tpath.read_text()) if tpath.exists() else {}
    return OrchRun(wall, out_dir, run_dir / "results" / sweep, timings)


def run_lmeval(run_dir: Path, lm_eval: Path, include: Path, models: dict[str, Path], tasks: list[str],
               prompts: list[str]) -> LmRun:
    """One `lm_eval` invocation per model, offline, from its own venv, all of the model's cells in it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(CACHE / "hf_datasets"), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)
    names = ",".join(lmeval_task_name(t, p) for t in tasks for p in prompts)
    per_model = {}
    for name, path in models.items():
        out = run_dir / "lmeval" / name
        out.mkdir(parents=True, exist_ok=True)
        args = [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={path},dtype=float32",
                "--tasks", names, "--include_path", str(include), "--batch_size", str(BATCH_SIZE),
                "--device", "cpu", "--output_path", str(out), "--log_samples", "--seed", "0"]
        t0 = time.perf_counter()
        proc = subprocess.run(args, cwd=run_dir, capture_output=True, text=True, env=env)
        per_model[name] = time.perf_counter() - t0
        (out / "lm_eval.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise BenchError(f"lm_eval failed on {name} (exit {proc.returncode}); log: {out / 'lm_eval.log'}\n"
                             + (proc.stdout + proc.stderr)[-3000:])
    return LmRun(sum(per_model.values()), per_model, run_dir / "lmeval")


# --- reading what each tool produced ----------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One example's result in one cell, as a tool reports it."""

    prompt: str
    generation: str
    exact_match: bool


Key = tuple[str, str, str, int]  # (model, task, prompt style, example idx)


def orchestrator_rows(store_dir: Path):
    """Every stored row of the sweep, with model/task/prompt columns from its manifest."""
    import pandas as pd

    manifest = json.loads((store_dir / "manifest.json").read_text())
    cells = {c["id"]: (c["model"], c["task"], c["prompt"]) for c in manifest["cells"]}
    files = sorted(glob.glob(str(store_dir / "shards" / "*.parquet")))
    if not files:
        raise BenchError(f"no shard files under {store_dir / 'shards'}")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df["model"] = [cells[c][0] for c in df["cell_id"]]
    df["task"] = [cells[c][1].removeprefix("bench_") for c in df["cell_id"]]
    df["prompt_style"] = [cells[c][2] for c in df["cell_id"]]
    return df


def orchestrator_outputs(df) -> dict[Key, Output]:
    from orchestrator.metrics.definitions import normalize_answer

    out = {}
    for r in df.itertuples(index=False):
        targets = list(r.targets)
        em = normalize_answer(r.answer) in {normalize_answer(t) for t in targets}
        out[(r.model, r.task, r.prompt_style, int(r.example_idx))] = Output(r.prompt, r.generation, bool(em))
    return out


def lmeval_outputs(out_dir: Path, tasks: list[str], prompts: list[str]) -> dict[Key, Output]:
    """Per-example outputs from lm_eval's --log_samples files (one folder per model)."""
    by_name = {lmeval_task_name(t, p): (t, p) for t in tasks for p in prompts}
    out = {}
    for model_dir in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        files = glob.glob(str(model_dir / "**" / "samples_*.jsonl"), recursive=True)
        if not files:
            raise BenchError(f"lm_eval wrote no samples under {model_dir}")
        for f in files:
            task_name = Path(f).name.removeprefix("samples_").rsplit("_", 1)[0]
            if task_name not in by_name:
                continue
            task, style = by_name[task_name]
            for line in Path(f).read_text().splitlines():
                s = json.loads(line)
                args = s["arguments"]
                first = args["gen_args_0"] if isinstance(args, dict) else args[0]
                context = first["arg_0"] if isinstance(first, dict) else first[0]
                gen = s["filtered_resps"][0]
                gen = gen[0] if isinstance(gen, list) else gen
                out[(model_dir.name, task, style, int(s["doc_id"]))] = Output(context, gen,
                                                                             float(s["exact_match"]) == 1.0)
    return out


@dataclass(frozen=True)
class Disagreement:
    key: Key
    what: str  # "missing", "prompt", "generation", "exact_match"
    orchestrator: str
    lm_eval: str

    def __str__(self) -> str:
        model, task, style, idx = self.key
        return (f"cell {model} x {task} x {style}, example {idx}: {self.what} differs: orchestrator "
                f"{self.orchestrator!r} vs lm_eval {self.lm_eval!r}")


def compare(orch: dict[Key, Output], lm: dict[Key, Output]) -> list[Disagreement]:
    """Every example where the tools' prompt, generation or exact match differ, or one lacks it."""
    out = []
    for key in sorted(set(orch) | set(lm)):
        a, b = orch.get(key), lm.get(key)
        if a is None or b is None:
            out.append(Disagreement(key, "missing", "absent" if a is None else "present",
                                    "absent" if b is None else "present"))
        elif a.prompt != b.prompt:
            out.append(Disagreement(key, "prompt", a.prompt, b.prompt))
        elif a.generation != b.generation:
            out.append(Disagreement(key, "generation", a.generation, b.generation))
        elif a.exact_match != b.exact_match:
            out.append(Disagreement(key, "exact_match", str(a.exact_match), str(b.exact_match)))
    return out


def cell_exact_match(outputs: dict[Key, Output]) -> dict[tuple[str, str, str], float]:
    cells: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for (m, t, p, _), o in outputs.items():
        cells[(m, t, p)].append(o.exact_match)
    return {k: sum(v) / len(v) for k, v in cells.items()}


# --- where orchestrator's time goes -----------------------------------------------------------------------

DRIVER_PHASES = ("preflight", "plan", "store", "models", "tracking", "startup", "execute", "score", "analysis")


def time_split(wall: float, timings: dict, df, slots: int) -> dict[str, float]:
    """Orchestrator's wall time by phase, and the replicas' work inside `execute`.

    Driver phases come from timings.json (`process` = wall minus the run's own
    phases: Python start, imports, config, Ray shutdown). Worker figures are
    summed over replicas (each replica's load once; each shard's seconds once):
    `load`, `generate`, `score` (log-likelihood), `inference` (whole shards).
    `overhead_share` = 1 - (load + inference) / (wall x slots): every second a
    replica slot (a CPU a replica holds) was not loading or running a model,
    counted against the tool. `overhead:<model>` = 1 - the model's shard seconds
    / the replica-seconds its replicas held it loaded and ready (timings'
    `serving_seconds`): dispatch, Ray calls and store writes while it was loaded.
    """
    phases = dict(timings.get("phases") or {})
    out = {p: float(phases.get(p, 0.0)) for p in DRIVER_PHASES}
    out["other"] = float(timings.get("other_seconds", 0.0))
    out["process"] = max(0.0, wall - float(timings.get("wall_seconds", 0.0)))
    replicas = df.drop_duplicates(["worker", "model"])  # a replica may load several models in turn
    out["load"] = float(replicas["load_seconds"].sum())
    shards = df.drop_duplicates("shard_id")
    out["inference"] = float(shards["shard_seconds"].sum())
    for col, name in (("generate_seconds", "generate"), ("score_seconds", "score_ll")):
        out[name] = float(shards[col].sum()) if col in shards else float("nan")
    out["wall"] = wall
    out["slots"] = float(slots)
    out["overhead_share"] = 1.0 - (out["load"] + out["inference"]) / (wall * slots) if wall > 0 else float("nan")
    out["driver_share"] = (wall - out["execute"]) / wall if wall > 0 else float("nan")
    # per model, while a replica held it loaded (timings' serving_seconds): the share not spent in its shards
    serving = timings.get("serving_seconds") or {}
    if "model" in df:
        per_model = df.drop_duplicates("shard_id").groupby("model")["shard_seconds"].sum()
        for model, busy in per_model.items():
            held = float(serving.get(str(model), 0.0))
            out[f"overhead:{model}"] = 1.0 - float(busy) / held if held > 0 else float("nan")
    return out


def model_loads(df) -> dict[str, int]:
    """Replicas (each loads its model once) that ran shards, per model."""
    return {str(m): int(n) for m, n in df.groupby("model")["worker"].nunique().items()}


def reloads(df) -> int:
    """Model loads beyond one per replica: a replica whose shards carry more than one load time loaded again."""
    return int((df.groupby(["worker", "model"])["load_seconds"].nunique() - 1).sum())


def throughput(df) -> dict[str, dict[str, float]]:
    """Per model: examples/s and generated tokens/s over its inference seconds (summed over its shards)."""
    out = {}
    for model, g in df.groupby("model"):
        shards = g.drop_duplicates("shard_id")
        secs = float(shards["shard_seconds"].sum())
        gen_secs = float(shards["generate_seconds"].sum()) if "generate_seconds" in shards else secs
        gen_tokens = int(sum(len(x) for x in g["generation_token_ids"]))
        prompt_tokens = int(g["n_prompt_tokens"].sum())
        out[str(model)] = {
            "examples": float(len(g)), "seconds": secs, "examples_per_s": len(g) / secs if secs else float("nan"),
            "gen_tokens_per_s": gen_tokens / gen_secs if gen_secs else float("nan"),
            "tokens_per_s": (gen_tokens + prompt_tokens) / secs if secs else float("nan"),
        }
    return out


# --- summary ----------------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """'median (min–max)' of the values."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def machine() -> str:
    """The hardware, short: the BENCHMARKS.md machine column."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores {platform.machine()}, {mem:.0f} GB, no GPU"


def software() -> str:
    import ray
    import torch
    import transformers

    return (f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"ray {ray.__version__}, lm_eval {LMEVAL_VERSION} (own venv, same torch and transformers)")


def commit() -> str:
    from orchestrator.sweep import code_version

    return code_version().split("+", 1)[-1]


@dataclass
class Repeat:
    orch: OrchRun
    lm: LmRun
    first: str  # which tool ran first
    split: dict[str, float] = field(default_factory=dict)
    loads: dict[str, int] = field(default_factory=dict)
    reloads: int = 0
    throughput: dict[str, dict[str, float]] = field(default_factory=dict)
    disagreements: list[Disagreement] = field(default_factory=list)
    n_examples: int = 0
    n_cells: int = 0
    loadavg: float = 0.0

    @property
    def ratio(self) -> float:
        return self.lm.wall / self.orch.wall
