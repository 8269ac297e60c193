"""The cost estimate: linear in params and tokens, measured throughput replaces the assumption, and `plan` shows it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from orchestrator.config import load
from orchestrator.cost import (
    ASSUMED,
    CPU,
    GPU,
    MEASURED,
    SCORE,
    assumption_for,
    device_kind,
    estimate,
    measure,
)
from orchestrator.plan import make_plan
from orchestrator.record import Provenance, Record
from orchestrator.tasks.task import Example, Task, with_hash


def _task(n: int = 40, input_len: int = 20, options: int = 0) -> Task:
    exs = tuple(
        Example(idx=i, input=f"{i:0{input_len}d}", targets=("7",),
                choices=tuple(f"opt{j}" for j in range(options)), choice_scores=tuple(float(j == 0) for j in
                                                                                       range(options)))
        for i in range(n)
    )
    return with_hash(Task(name="t", source="mem", examples=exs))


def _cfg(*more: str):
    cfg = load(["model=gpt2", "task=[add_2]", "prompt=[zero_shot]", "sweep.shard_size=10", *more])
    return cfg


def _plan(cfg, task: Task):
    return make_plan(cfg, {"add_2": task})


def _one(cfg, task: Task, assumption=GPU, **kw):
    return estimate(_plan(cfg, task), {"add_2": task}, assumption, **kw)


def test_cost_is_linear_in_params():
    cfg = _cfg("model.sizes=[gpt2,gpt2-medium]")
    cfg.model.catalog["gpt2"].params = 100_000_000
    cfg.model.catalog["gpt2-medium"].params = 1_000_000_000
    for a in (GPU, CPU, replace(GPU, batch_size=1)):  # compute-bound and memory-bound decoding alike
        small, big = _one(cfg, _task(), a).cells
        assert small.est_tokens == big.est_tokens > 0
        assert big.est_device_seconds == pytest.approx(10 * small.est_device_seconds)
        assert big.est_flops == pytest.approx(2 * 1_000_000_000 * big.est_tokens)


def test_cost_is_linear_in_examples_and_grows_with_prompt_length():
    cfg = _cfg("model.sizes=[gpt2]")
    base = _one(cfg, _task(n=40)).cells[0]
    twice = _one(cfg, _task(n=80)).cells[0]
    assert twice.est_tokens == pytest.approx(2 * base.est_tokens)
    assert twice.est_device_seconds == pytest.approx(2 * base.est_device_seconds)
    longer = _one(cfg, _task(n=40, input_len=200)).cells[0]
    assert longer.prefill_tokens > 3 * base.prefill_tokens
    assert longer.est_device_seconds > base.est_device_seconds


def test_more_new_tokens_cost_more():
    short = _one(_cfg("model.sizes=[gpt2]", "prompts.zero_shot.max_new_tokens=4"), _task()).cells[0]
    long = _one(_cfg("model.sizes=[gpt2]", "prompts.zero_shot.max_new_tokens=64"), _task()).cells[0]
    assert long.generated_tokens == pytest.approx(16 * short.generated_tokens)
    assert long.prefill_tokens == short.prefill_tokens
    assert long.est_device_seconds > short.est_device_seconds


def test_each_option_is_scored_with_the_prompt():
    cfg = _cfg("model.sizes=[gpt2]", "prompt=[mc]")
    two = _one(cfg, _task(options=2)).cells[0]
    eight = _one(cfg, _task(options=8)).cells[0]
    assert two.generated_tokens == eight.generated_tokens == 0  # loglik multiple choice generates nothing
    assert eight.prefill_tokens > 3 * two.prefill_tokens  # (1 target + 8 options) vs (1 + 2) prompts scored


def test_a_larger_batch_makes_decoding_cheaper():
    cfg = _cfg("model.sizes=[gpt2]")
    one = _one(cfg, _task(), assumption_for("GPU", 1)).cells[0]
    many = _one(cfg, _task(), assumption_for("GPU", 64)).cells[0]
    assert many.est_device_seconds < one.est_device_seconds


def test_totals_are_the_sum_of_cells_and_remaining_leaves_out_done_shards():
    cfg = _cfg("prompt=[zero_shot,three_shot]")
    plan = _plan(cfg, _task(n=35))
    est = estimate(plan, {"add_2": _task(n=35)}, GPU)
    assert len(est.cells) == len(plan.cells) == 8
    assert est.total_seconds == pytest.approx(sum(c.est_device_seconds for c in est.cells))
    assert est.total_hours == pytest.approx(est.total_seconds / 3600)
    assert est.remaining_seconds(plan, set()) == pytest.approx(est.total_seconds)
    first = plan.cells[0]
    done = {s.id for s in plan.shards_of(first.id)}
    assert est.remaining_seconds(plan, done) == pytest.approx(est.total_seconds - est.cells[0].est_device_seconds)
    last = plan.shards_of(first.id)[-1]  # 5 of the cell's 35 examples
    assert est.remaining_seconds(plan, {last.id}) == pytest.approx(
        est.total_seconds - est.cells[0].est_device_seconds * 5 / 35)


def _rows(cell_id: str, shard_id: str, n: int, seconds: float, device: str = "cuda:0", prompt_tokens: int = 10,
          generated: int = 2) -> list[dict]:
    prov = asdict(Provenance("node", "h", device, "", "w", 1.0, seconds))
    return [{**asdict(Record(cell_id, shard_id, i, prompt="x" * 20, n_prompt_tokens=prompt_tokens,
                             generation_token_ids=list(range(generated)), targets=["7"])), **prov}
            for i in range(n)]


def test_measured_throughput_replaces_the_assumption():
    cfg = _cfg("model.sizes=[gpt2,gpt2-medium]")
    task = _task()
    plan = _plan(cfg, task)
    small, big = plan.cells
    shard = plan.shards_of(small.id)[0]
    # 10 rows x (10 prompt + 2 generated + (10 prompt + 0.5 target) scored) = 225 tokens in 9 s = 25 tokens/s
    measured = measure(_rows(small.id, shard.id, 10, 9.0), plan, "GPU")
    m = measured[("gpt2", "generate")]
    assert m.tokens_per_second == pytest.approx(225 / 9)
    assert m.generated_per_example == 2 and m.chars_per_token == 2 and m.shards == 1
    est = estimate(plan, {"add_2": task}, GPU, measured)
    s, b = est.cells
    assert (s.basis, b.basis) == (MEASURED, ASSUMED)
    assert s.est_device_seconds == pytest.approx(s.est_tokens / m.tokens_per_second)
    assert s.generated_tokens == pytest.approx(2 * 40)  # the measured mean, not max_new_tokens
    assumed = estimate(plan, {"add_2": task}, GPU).cells[0]
    assert assumed.basis == ASSUMED
    assert s.est_device_seconds > 1000 * assumed.est_device_seconds  # 25 tokens/s is far slower than an A100
    # rows run on CPU say nothing about a GPU, and rows without provenance say nothing at all
    assert measure(_rows(small.id, shard.id, 10, 9.0, device="cpu"), plan, "GPU") == {}
    bare = [{k: v for k, v in r.items() if k != "shard_seconds"} for r in _rows(small.id, shard.id, 10, 9.0)]
    assert measure(bare, plan, "GPU") == {}


def test_a_shared_gpu_counts_its_share():
    cfg = _cfg("model.sizes=[gpt2]")
    plan = _plan(cfg, _task())
    cell = plan.cells[0]
    rows = [{**r, "gpus": 0.25} for r in _rows(cell.id, plan.shards_of(cell.id)[0].id, 10, 9.0)]
    assert measure(rows, plan, "GPU")[("gpt2", "generate")].tokens_per_second == pytest.approx(225 / (9 * 0.25))


def test_measurements_are_per_style_kind():
    cfg = _cfg("model.sizes=[gpt2]", "prompt=[zero_shot,mc]")
    task = _task(options=4)
    plan = _plan(cfg, task)
    gen = next(c for c in plan.cells if c.prompt.name == "zero_shot")
    measured = measure(_rows(gen.id, plan.shards_of(gen.id)[0].id, 10, 9.0), plan, "GPU")
    assert ("gpt2", SCORE) not in measured
    bases = {c.label: c.basis for c in estimate(plan, {"add_2": task}, GPU, measured).cells}
    assert bases == {"gpt2/add_2/mc": ASSUMED, "gpt2/add_2/zero_shot": MEASURED}


@pytest.mark.parametrize(("device", "gpus", "kind"), [("auto", 0.0, "CPU"), ("auto", None, "GPU"), ("auto", 0.5, "GPU"),
                                                      ("cpu", None, "CPU"), ("cuda", 0.0, "GPU")])
def test_device_kind(device, gpus, kind):
    assert device_kind(device, gpus) == kind


def _cli_plan(tmp_path, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "plan", "experiment=demo", f"storage.root={tmp_path / 'store'}",
         f"tracking.uri=sqlite:///{tmp_path / 'm.db'}", *more],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_plan_prints_device_hours_per_cell_and_in_all(tmp_path):
    """`plan` loads no model: a fake finished shard in a real store makes its model's generating cells measured."""
    from orchestrator.sweep import prepare

    cfg = load(["experiment=demo", f"storage.root={tmp_path / 'store'}"])
    plan, _, store = prepare(cfg)
    cell = plan.cells[0]
    shard = plan.shards_of(cell.id)[0]
    store.write_shard(shard.id, _rows(cell.id, shard.id, shard.size, 30.0, device="cpu", prompt_tokens=40))
    r = _cli_plan(tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "CPU-h" in lines[1] and "basis" in lines[1]  # cluster=local runs on CPUs (gpus_per_model: 0)
    cell_lines = [ln for ln in lines if ln.endswith(tuple(c.id for c in plan.cells))]
    assert len(cell_lines) == len(plan.cells) == 20
    same_model = [c.id for c in plan.cells if c.model.name == cell.model.name]
    for ln in cell_lines:
        assert (" measured " in ln) == ln.endswith(tuple(same_model)), ln
        assert float(ln.split()[7]) > 0
    total = next(ln for ln in lines if ln.startswith("estimated "))
    assert "CPU-h in all" in total and "for the 39 shards to run" in total and "4 of 20 cells" in total
    assert "estimate" in total
    per_cell = sum(float(ln.split()[7]) for ln in cell_lines)
    assert float(total.split()[1]) == pytest.approx(per_cell, rel=0.02)  # printed to 3 significant figures
    gpu = _cli_plan(tmp_path, "cluster.gpus_per_model=null")
    assert gpu.returncode == 0, gpu.stderr
    assert "GPU-h" in gpu.stdout.splitlines()[1] and "GPU-h in all" in gpu.stdout
    assert "0 of 20 cells" in gpu.stdout  # a CPU measurement is no GPU's
