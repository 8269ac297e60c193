"""Cost before a sweep runs: device-hours per cell and in total, estimated from the plan. Pure.

An estimate, not a quote. The rule, stated once:

    tokens per example   = prefill tokens + generated tokens
    prefill tokens       = the prompt (when the style generates)
                           + for every scored continuation (each target, each option): prompt + continuation
    generated tokens     = prompt.max_new_tokens (an upper bound: generation stops early at a stop string),
                           or the mean the store measured for that model and style kind
    FLOPs                = 2 x params x tokens (forward pass only, attention over the context ignored)
    prefill seconds      = 2 x params x prefill tokens / Assumption.flops_per_second
    seconds per generated token = max(2 x params / flops_per_second,
                                      weight bytes / (memory_bandwidth x backend.batch_size))
                           (decoding reads all weights once per step for the whole batch: memory-bound
                           until the batch is large enough to be compute-bound; the KV cache is ignored)

Prompt lengths come from rendering the cell's prompts (`prompts.render`, no tokenizer, every exemplar kept)
for at most `SAMPLE` evenly spread examples and dividing characters by `Assumption.chars_per_token`
(4, typical of English BPE; a character-level model has 1: a measured store corrects it); the sample's
mean is extrapolated to the cell's examples. A prompt longer than `max_length` counts as `max_length`.

Where the store holds finished shards of a model (rows with `shard_seconds` on the same kind of device),
`measure` gives that model's tokens per device-second for each style kind ("generate": a style that
generates, also scoring its targets/options; "score": options scored only), its mean generated tokens and
its tokenizer's characters per token; those cells use them instead of the assumption and say "measured".
A device-second is one model worker's wall time on its device; a GPU replica that shares its GPU (placement
hands out eighths) counts its share (`shard_seconds x gpus`) where the rows record `gpus`, else the whole GPU.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from orchestrator.config import PromptConfig
from orchestrator.placement import bytes_per_param
from orchestrator.plan import Cell, Plan
from orchestrator.prompts import render
from orchestrator.tasks.task import Task

SAMPLE = 256  # examples rendered per (task, prompt style); the mean is extrapolated to the rest
CHARS_PER_TOKEN = 4.0  # English text under a BPE tokenizer (GPT-2, Pythia); the store's measurement replaces it
ASSUMED, MEASURED = "assumed", "measured"
GENERATE, SCORE = "generate", "score"


@dataclass(frozen=True)
class Assumption:
    """The throughput assumed for one device where nothing is measured yet."""

    device: str  # "GPU" | "CPU": what a device-hour is
    flops_per_second: float  # effective (achieved) FLOP/s of a forward pass over many tokens
    memory_bandwidth: float  # effective bytes/s of reading the weights, per decoding step
    batch_size: int = 32  # sequences decoded together (backend.batch_size)
    chars_per_token: float = CHARS_PER_TOKEN
    note: str = ""


# An A100-class GPU: 312 TFLOP/s dense bf16 at ~30% model FLOPs utilisation; ~1.5 TB/s of its ~2 TB/s HBM.
GPU = Assumption("GPU", 312e12 * 0.3, 1.5e12,
                 note="an A100-class GPU at 30% MFU (94 TFLOP/s) and 1.5 TB/s for decoding")
# One CPU worker (a few cores of torch fp32): ~100 GFLOP/s achieved and ~20 GB/s of memory bandwidth.
CPU = Assumption("CPU", 100e9, 20e9, note="a CPU worker at 100 GFLOP/s and 20 GB/s for decoding")


def device_kind(backend_device: str, gpus_per_model: float | None) -> str:
    """ "GPU" or "CPU": what one model worker runs on (backend.device; auto follows cluster.gpus_per_model)."""
    if backend_device == "cpu":
        return "CPU"
    if backend_device == "cuda":
        return "GPU"
    return "CPU" if gpus_per_model == 0 else "GPU"  # auto: null (from placement) or > 0 asks Ray for GPUs


def assumption_for(device: str, batch_size: int = 32) -> Assumption:
    """The default assumption for "GPU" or "CPU", decoding `batch_size` sequences at once."""
    base = GPU if device == "GPU" else CPU
    return Assumption(base.device, base.flops_per_second, base.memory_bandwidth, max(1, batch_size),
                      base.chars_per_token, base.note)


def style_kind(prompt: PromptConfig) -> str:
    """ "score" where the style only scores options (multiple_choice, loglik), else "generate"."""
    return SCORE if prompt.style == "multiple_choice" and prompt.mc_format != "letters" else GENERATE


@dataclass(frozen=True)
class Measured:
    """What finished shards of one model and style kind show, on one kind of device."""

    tokens_per_second: float  # prefill + generated tokens per device-second
    generated_per_example: float | None  # mean generated tokens of a generating example; None: none generated
    chars_per_token: float | None  # the model's tokenizer on these prompts; None: no prompt tokens recorded
    shards: int
    seconds: float


@dataclass(frozen=True)
class CellCost:
    """One cell's estimate; `basis` says whether its throughput was measured or assumed."""

    cell_id: str
    label: str
    n_examples: int
    prefill_tokens: float
    generated_tokens: float
    est_flops: float
    est_device_seconds: float
    basis: str  # MEASURED | ASSUMED

    @property
    def est_tokens(self) -> float:
        return self.prefill_tokens + self.generated_tokens

    @property
    def seconds_per_example(self) -> float:
        return self.est_device_seconds / self.n_examples if self.n_examples else 0.0

    @property
    def hours(self) -> float:
        return self.est_device_seconds / 3600


@dataclass(frozen=True)
class CostEstimate:
    device: str  # "GPU" | "CPU"
    assumption: Assumption
    cells: tuple[CellCost, ...]

    @property
    def total_seconds(self) -> float:
        return sum(c.est_device_seconds for c in self.cells)

    @property
    def total_hours(self) -> float:
        return self.total_seconds / 3600

    @property
    def measured_cells(self) -> int:
        return sum(c.basis == MEASURED for c in self.cells)

    def remaining_seconds(self, plan: Plan, done: Collection[str]) -> float:
        """Device-seconds of the shards not in `done`: each cell's per-example cost times their examples."""
        per_example = {c.cell_id: c.seconds_per_example for c in self.cells}
        return sum(per_example[s.cell_id] * s.size for s in plan.shards if s.id not in done)


@dataclass(frozen=True)
class _Profile:
    """Per sampled example of a (task, prompt style): characters, before any tokenizer."""

    generate: bool
    max_new_tokens: int
    examples: tuple[tuple[int, int, int], ...]  # (prompt chars, scored pairs, continuation chars summed)


def profile(task: Task, prompt: PromptConfig, sample: int = SAMPLE) -> _Profile:
    """Render at most `sample` evenly spread examples of `task` and keep their sizes."""
    n = len(task.examples)
    k = min(n, max(1, sample))
    idx = sorted({task.examples[i * n // k].idx for i in range(k)}) if n else []
    requests = render(task, prompt, idx, chat=lambda text: text)  # a chat template's own tokens are not counted
    return _Profile(
        generate=style_kind(prompt) == GENERATE,
        max_new_tokens=prompt.max_new_tokens,
        examples=tuple((len(r.prompt), len(r.targets) + len(r.choices), sum(map(len, (*r.targets, *r.choices))))
                       for r in requests),
    )


def _tokens(p: _Profile, chars_per_token: float, generated: float | None,
            max_length: int | None) -> tuple[float, float]:
    """Mean (prefill, generated) tokens per example."""
    if not p.examples:
        return 0.0, 0.0
    prefill = 0.0
    for prompt_chars, pairs, cont_chars in p.examples:
        prompt = math.ceil(prompt_chars / chars_per_token)
        if max_length:
            prompt = min(prompt, max_length)
        prefill += (prompt if p.generate else 0) + pairs * prompt + cont_chars / chars_per_token
    gen = 0.0
    if p.generate:
        gen = p.max_new_tokens if generated is None else min(generated, p.max_new_tokens)
    return prefill / len(p.examples), gen


def assumed_seconds(params: int, dtype: str, prefill: float, generated: float, a: Assumption) -> float:
    """Device-seconds for `prefill` tokens in parallel and `generated` tokens decoded in batches (module doc)."""
    flops_per_token = 2.0 * params
    weights = params * bytes_per_param(dtype, on_gpu=a.device == "GPU")[0]
    per_generated = max(flops_per_token / a.flops_per_second, weights / (a.memory_bandwidth * a.batch_size))
    return prefill * flops_per_token / a.flops_per_second + generated * per_generated


def estimate(
    plan: Plan,
    tasks: Mapping[str, Task],
    assumption: Assumption,
    measured: Mapping[tuple[str, str], Measured] | None = None,
    max_length: int | None = None,
    sample: int = SAMPLE,
) -> CostEstimate:
    """Each cell's tokens, FLOPs and device-seconds; `measured` maps (model name, style kind) to what a store showed."""
    profiles: dict[tuple[str, str], _Profile] = {}
    out = []
    for c in plan.cells:
        key = (c.task, c.prompt.name)
        if key not in profiles:
            profiles[key] = profile(tasks[c.task], c.prompt.config, sample)
        out.append(_cell_cost(c, profiles[key], assumption, (measured or {}).get(_group(c)), max_length))
    return CostEstimate(assumption.device, assumption, tuple(out))


def _group(c: Cell) -> tuple[str, str]:
    return c.model.name, style_kind(c.prompt.config)


def _cell_cost(c: Cell, p: _Profile, a: Assumption, m: Measured | None, max_length: int | None) -> CellCost:
    cpt = (m.chars_per_token if m and m.chars_per_token else None) or a.chars_per_token
    prefill, gen = _tokens(p, cpt, m.generated_per_example if m else None, max_length)
    prefill, gen = prefill * c.n_examples, gen * c.n_examples
    tokens = prefill + gen
    if m is not None and m.tokens_per_second > 0:
        seconds, basis = tokens / m.tokens_per_second, MEASURED
    else:
        seconds, basis = assumed_seconds(c.model.params, c.model.dtype, prefill, gen, a), ASSUMED
    return CellCost(c.id, c.label, c.n_examples, prefill, gen, 2.0 * c.model.params * tokens, seconds, basis)


def row_device(device: object) -> str:
    """ "GPU" for a stored row's Provenance.device of cuda:N, else "CPU"."""
    return "GPU" if str(device or "").startswith("cuda") else "CPU"


def measure(rows: Iterable[Mapping], plan: Plan, device: str) -> dict[tuple[str, str], Measured]:
    """(model name, style kind) -> throughput, from stored shard rows run on `device` ("GPU" | "CPU").

    Rows are Record dicts with Provenance columns (one finished shard's rows share `shard_seconds`);
    rows without `shard_seconds` (stores written before provenance), of cells not in the plan or run on
    another kind of device are left out. Tokens are counted as the estimate counts them: the generation
    prompt, every (prompt + continuation) scored, and the generated ids.
    """
    cells = {c.id: c for c in plan.cells}
    acc: dict[tuple[str, str], dict[str, float]] = {}
    seen: set[str] = set()
    for r in rows:
        cell = cells.get(str(r.get("cell_id")))
        secs = _number(r.get("shard_seconds"))
        share = _number(r.get("gpus"))  # a GPU replica's share of its GPU (Provenance.gpus), where recorded
        if secs is not None and share and share > 0 and device == "GPU":
            secs *= share
        if cell is None or secs is None or secs <= 0 or row_device(r.get("device")) != device:
            continue
        a = acc.setdefault(_group(cell), dict.fromkeys(
            ("tokens", "seconds", "shards", "gen", "gen_rows", "chars", "prompt_tokens"), 0.0))
        shard = str(r.get("shard_id"))
        if shard not in seen:
            seen.add(shard)
            a["seconds"] += secs
            a["shards"] += 1
        prompt_tokens = int(r.get("n_prompt_tokens") or 0)
        prompt_chars = len(str(r.get("prompt") or ""))
        cpt = prompt_chars / prompt_tokens if prompt_tokens else CHARS_PER_TOKEN
        targets = list(r.get("targets") if r.get("targets") is not None else [])
        choice_tokens = list(r.get("choice_n_tokens") if r.get("choice_n_tokens") is not None else [])
        pairs = len(targets) + len(choice_tokens)
        scored = pairs * prompt_tokens + sum(choice_tokens) + sum(len(str(t)) for t in targets) / cpt
        generated = bool(r.get("generated", True))
        gen = len(r.get("generation_token_ids") if r.get("generation_token_ids") is not None else [])
        a["tokens"] += (prompt_tokens + gen if generated else 0) + scored
        if generated:
            a["gen"] += gen
            a["gen_rows"] += 1
        a["chars"] += prompt_chars
        a["prompt_tokens"] += prompt_tokens
    return {
        key: Measured(
            tokens_per_second=a["tokens"] / a["seconds"],
            generated_per_example=a["gen"] / a["gen_rows"] if a["gen_rows"] else None,
            chars_per_token=a["chars"] / a["prompt_tokens"] if a["prompt_tokens"] else None,
            shards=int(a["shards"]),
            seconds=a["seconds"],
        )
        for key, a in acc.items()
        if a["seconds"] > 0 and a["tokens"] > 0
    }


def _number(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def fmt_hours(h: float) -> str:
    """Hours to three significant figures (a tiny demo model costs micro-hours)."""
    return f"{h:.3g}"
