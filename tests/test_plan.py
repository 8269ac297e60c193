"""The plan is pure and its ids are stable: same config, same ids; any input change, new ids."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.config import load
from orchestrator.plan import Resolved, make_plan
from orchestrator.tasks.task import Example, Task, with_hash


def _task(name: str = "t", n: int = 250, target_shift: int = 0) -> Task:
    exs = tuple(Example(idx=i, input=f"{i}+1=", targets=(str(i + 1 + target_shift),)) for i in range(n))
    return with_hash(Task(name=name, source="mem", examples=exs, example_input_prefix="", example_output_prefix=""))


@pytest.fixture()
def cfg():
    return load(["model=gpt2", "task=[add_2]", "prompt=[zero_shot,three_shot]", "sweep.shard_size=100"])


def test_grid_expands_to_cells_and_shards(cfg):
    plan = make_plan(cfg, {"add_2": _task(n=250)})
    assert len(plan.models) == 4
    assert len(plan.cells) == 4 * 1 * 2
    assert len(plan.shards) == 8 * 3  # 250 examples in shards of 100 -> 3 shards per cell
    assert [(s.start, s.stop) for s in plan.shards_of(plan.cells[0].id)] == [(0, 100), (100, 200), (200, 250)]
    assert [m.params for m in plan.models] == sorted(m.params for m in plan.models)
    by_model = plan.shards_by_model()
    assert list(by_model) == [m.name for m in plan.models]
    assert all(len(v) == 6 for v in by_model.values())


def test_same_config_same_ids(cfg):
    a = make_plan(cfg, {"add_2": _task()})
    b = make_plan(load(["model=gpt2", "task=[add_2]", "prompt=[zero_shot,three_shot]", "sweep.shard_size=100"]),
                  {"add_2": _task()})
    assert [s.id for s in a.shards] == [s.id for s in b.shards]
    assert a.fingerprint == b.fingerprint
    assert len({s.id for s in a.shards}) == len(a.shards)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: setattr(c.model.catalog["gpt2"], "revision", "step1000"),
        lambda c: setattr(c.model.catalog["gpt2"], "path", "/elsewhere/gpt2"),
        lambda c: setattr(c.model, "dtype", "bfloat16"),
        lambda c: setattr(c.prompts["three_shot"], "shots", 5),
        lambda c: setattr(c.prompts["zero_shot"], "max_new_tokens", 9),
        lambda c: setattr(c.backend, "name", "vllm"),
        lambda c: setattr(c.backend, "max_length", 128),  # decides dropped exemplars and truncation
    ],
    ids=["revision", "path", "dtype", "shots", "max_new_tokens", "backend", "max_length"],
)
def test_changed_input_changes_ids(cfg, change):
    before = make_plan(cfg, {"add_2": _task()})
    change(cfg)
    after = make_plan(cfg, {"add_2": _task()})
    assert set(s.id for s in before.shards) != set(s.id for s in after.shards)


def test_task_content_changes_ids_but_unrelated_cells_keep_theirs(cfg):
    a = make_plan(cfg, {"add_2": _task()})
    b = make_plan(cfg, {"add_2": _task(target_shift=1)})
    assert not set(s.id for s in a.shards) & set(s.id for s in b.shards)


def test_adding_a_size_keeps_existing_ids(cfg):
    cfg.model.sizes = ["gpt2", "gpt2-medium"]
    small = make_plan(cfg, {"add_2": _task()})
    cfg.model.sizes = ["gpt2", "gpt2-medium", "gpt2-large"]
    big = make_plan(cfg, {"add_2": _task()})
    assert set(s.id for s in small.shards) < set(s.id for s in big.shards)


def test_shard_size_changes_ranges_not_cells(cfg):
    a = make_plan(cfg, {"add_2": _task()})
    cfg.sweep.shard_size = 50
    b = make_plan(cfg, {"add_2": _task()})
    assert [c.id for c in a.cells] == [c.id for c in b.cells]
    assert len(b.shards) == 8 * 5
    assert replace(a.shards[0]).id != b.shards[0].id


SHA_A, SHA_B = "a" * 40, "b" * 40


def test_a_branch_is_keyed_by_the_commit_it_resolved_to(cfg):
    """`main` today and `main` after a push are different models: different ids, and the commit is what loads."""
    tasks = {"add_2": _task()}
    at = {n: Resolved(SHA_A, None, "hub") for n in cfg.model.sizes}
    moved = dict(at, gpt2=Resolved(SHA_B, None, "hub"))
    a, b = make_plan(cfg, tasks, at), make_plan(cfg, tasks, moved)
    gpt2 = next(m for m in a.models if m.name == "gpt2")
    assert gpt2.revision == SHA_A and gpt2.requested_revision == "main"
    ids_a = {s.id for s in a.shards if a.cell(s.cell_id).model.name == "gpt2"}
    ids_b = {s.id for s in b.shards if b.cell(s.cell_id).model.name == "gpt2"}
    assert not ids_a & ids_b
    others = {s.id for s in a.shards} - ids_a
    assert others <= {s.id for s in b.shards}  # the sizes that did not move keep their ids
    assert make_plan(cfg, tasks, at).fingerprint == a.fingerprint  # same resolution, same ids


def test_a_local_folder_is_keyed_by_its_content(cfg):
    tasks = {"add_2": _task()}
    one = {n: Resolved("main", "files:1", "") for n in cfg.model.sizes}
    two = {n: Resolved("main", "files:2", "") for n in cfg.model.sizes}
    a, b = make_plan(cfg, tasks, one), make_plan(cfg, tasks, two)
    assert a.models[0].fingerprint == "files:1" and a.models[0].requested_revision is None
    assert not {s.id for s in a.shards} & {s.id for s in b.shards}
