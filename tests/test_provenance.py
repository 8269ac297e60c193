"""Where a shard ran is recorded beside its results, never in its id; code_version survives a copy without .git.

The sweep-level check (a real local Ray sweep fills node, device, worker and timings)
is in tests/test_sweep.py, so no second sweep runs here.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import __version__, results
from orchestrator.config import load
from orchestrator.plan import make_plan
from orchestrator.record import Provenance, Record
from orchestrator.scoring import score_cells
from orchestrator.store import SweepStore
from orchestrator.sweep import CODE_VERSION_ENV, cells_table, code_version, manifest
from orchestrator.tasks.task import Example, Task, with_hash


def _task(n: int = 250) -> Task:
    exs = tuple(Example(idx=i, input=f"{i}+1=", targets=(str(i + 1),)) for i in range(n))
    return with_hash(Task(name="t", source="mem", examples=exs, example_input_prefix="", example_output_prefix=""))


# -- shard ids ------------------------------------------------------------------------------------------------

def test_shard_ids_are_those_of_stores_written_before_provenance():
    """Ids of a fixed grid as computed at commit 57e0a8b, before shards carried provenance.

    Provenance is an output: adding it must not orphan existing stores. If this fails, a change made every
    stored shard unfindable; make it on purpose (bump plan.RECORD_FORMAT_VERSION) or undo it.
    """
    cfg = load(["model=gpt2", "task=[add_2]", "prompt=[zero_shot,three_shot]", "sweep.shard_size=100"])
    plan = make_plan(cfg, {"add_2": _task()})
    assert len(plan.shards) == 24
    assert (plan.cells[0].id, plan.shards[0].id) == ("32dbb4635bf45d2e", "099b13910cdaab83")
    assert plan.fingerprint == "af8002624474a97b"


def test_provenance_is_not_a_record_field():
    """Record fields are what a shard's inputs produce; provenance columns are added beside them."""
    assert not set(Provenance.columns()) & set(Record.columns())
    assert Provenance.columns() == ["node", "host", "device", "device_name", "worker", "load_seconds",
                                    "shard_seconds", "gpus", "generate_seconds", "score_seconds"]


# -- stores with and without provenance ----------------------------------------------------------------------

def _store_with(tmp_path: Path, provenance: list[dict] | None) -> tuple:
    """A one-model store with every shard of one cell written; `provenance[i]` added to shard i's rows."""
    cfg = load(["model=gpt2", "model.sizes=[gpt2]", "task=[add_2]", "prompt=[zero_shot]", "sweep.shard_size=4",
                "sweep.name=prov", f"storage.root={tmp_path}", "metrics.names=[exact_match]"])
    tasks = {"add_2": _task(n=10)}
    plan = make_plan(cfg, tasks)
    store = SweepStore(str(tmp_path), plan.sweep_id)
    store.write_json("manifest.json", manifest(cfg, plan, tasks))
    cell = plan.cells[0]
    for i, shard in enumerate(plan.shards_of(cell.id)):
        rows = []
        for ex in tasks["add_2"].examples[shard.start:shard.stop]:
            answer = ex.targets[0] if ex.idx % 2 == 0 else "x"
            row = asdict(Record(cell.id, shard.id, ex.idx, ex.input, answer=answer, generation=answer,
                                targets=list(ex.targets)))
            rows.append({**row, **(provenance[i] if provenance else {})})
        store.write_shard(shard.id, rows)
    return cfg, plan, tasks, store


def _prov(node: str, worker: str = "w") -> dict:
    return asdict(Provenance(node, "h (127.0.0.1)", "cpu", "", worker, 1.5, 0.25))


def test_a_store_without_provenance_loads_and_scores(tmp_path):
    cfg, plan, tasks, store = _store_with(tmp_path / "old", None)
    cells = score_cells(plan, store, tasks, cfg.metrics)
    assert len(cells) == 1 and cells[0].nodes is None
    assert cells[0].scores["exact_match"]["mean"] == pytest.approx(0.5)
    assert "nodes" not in cells_table(cells)
    examples = results.load("prov", root=str(tmp_path / "old"))
    assert len(examples) == 10 and "node" not in examples


def test_nodes_counts_the_distinct_nodes_that_ran_a_cell(tmp_path):
    cfg, plan, tasks, store = _store_with(tmp_path / "new", [_prov("n1"), _prov("n2"), _prov("n1", "w2")])
    cells = score_cells(plan, store, tasks, cfg.metrics)
    assert cells[0].nodes == 2  # 3 shards on nodes n1, n2, n1: two distinct
    assert cells[0].scores["exact_match"]["mean"] == pytest.approx(0.5)  # provenance changes no score
    assert cells_table(cells)["nodes"].tolist() == [2]
    examples = results.load("prov", root=str(tmp_path / "new"))
    assert sorted(examples["node"].unique()) == ["n1", "n2"] and (examples["shard_seconds"] == 0.25).all()


def test_a_cell_partly_from_before_provenance_counts_the_nodes_it_knows(tmp_path):
    cfg, plan, tasks, store = _store_with(tmp_path / "mixed", [_prov("n1"), {}, _prov("n3")])
    assert score_cells(plan, store, tasks, cfg.metrics)[0].nodes == 2
    assert cells_table(score_cells(plan, store, tasks, cfg.metrics))["nodes"].tolist() == [2]
    assert pd.isna(results.load("prov", root=str(tmp_path / "mixed"))["node"]).sum() == 4  # the old shard's rows


# -- code_version ---------------------------------------------------------------------------------------------

def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path) -> Path:
    """A git repository holding an `orchestrator` package, one commit."""
    root = tmp_path / "repo"
    (root / "orchestrator").mkdir(parents=True)
    (root / "orchestrator" / "__init__.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "one")
    return root


def test_code_version_has_the_commit_of_a_checkout(repo, monkeypatch):
    monkeypatch.setenv(CODE_VERSION_ENV, "ignored: the checkout itself says which commit")
    assert code_version(repo) == f"{__version__}+{_git(repo, 'rev-parse', '--short', 'HEAD')}"
    (repo / "orchestrator" / "__init__.py").write_text("x = 2\n")
    assert code_version(repo).endswith(".dirty")


def test_code_version_without_git_takes_the_submitters_or_says_it_is_unknown(repo, tmp_path, monkeypatch):
    copy = tmp_path / "job_copy"  # what Ray unpacks on a worker: the files, no .git
    (copy / "orchestrator").mkdir(parents=True)
    (copy / "orchestrator" / "__init__.py").write_text("x = 1\n")
    monkeypatch.delenv(CODE_VERSION_ENV, raising=False)
    assert code_version(copy) == f"{__version__} (commit unknown: no .git; set {CODE_VERSION_ENV})"
    monkeypatch.setenv(CODE_VERSION_ENV, f"{__version__}+abc1234")
    assert code_version(copy) == f"{__version__}+abc1234"


def test_a_copy_inside_another_repository_does_not_take_its_commit(repo, monkeypatch):
    """An untracked copy under a checkout (a venv's site-packages, a job folder) is not that checkout."""
    nested = repo / "venv" / "site-packages"
    (nested / "orchestrator").mkdir(parents=True)
    (nested / "orchestrator" / "__init__.py").write_text("x = 1\n")
    monkeypatch.delenv(CODE_VERSION_ENV, raising=False)
    assert "commit unknown" in code_version(nested)
