"""The executor: models obtained on the node that runs them, replicas that cannot load their model, and what a
failed model looks like in the store, the result and MLflow."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from orchestrator import sweep
from orchestrator.config import load
from orchestrator.execute import ModelUnavailable, obtain_model, shutdown
from orchestrator.plan import ModelSpec
from tests.conftest import overrides_for


def _spec(path: str, name: str = "m") -> ModelSpec:
    return ModelSpec(family="f", name=name, path=path, revision="main", params=10, dtype="float32")


def test_a_missing_zoo_member_is_built_once_on_the_node_even_by_concurrent_replicas(tmp_path, monkeypatch):
    import orchestrator.zoo

    calls = []

    def fake_build(out_dir: Path, names: list[str], progress: bool = True) -> list[Path]:
        calls.append((Path(out_dir), list(names)))
        time.sleep(0.3)  # long enough for the other replicas to arrive while it builds
        for n in names:
            (Path(out_dir) / n).mkdir(parents=True)
            (Path(out_dir) / n / "config.json").write_text("{}")
        return [Path(out_dir) / n for n in names]

    monkeypatch.setattr(orchestrator.zoo, "build", fake_build)
    model = _spec(str(tmp_path / "zoo" / "zoo-3k"), "zoo-3k")
    errors = []

    def replica() -> None:
        try:
            obtain_model(model, "zoo", "node-a")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and calls == [(tmp_path / "zoo", ["zoo-3k"])]
    obtain_model(model, "zoo", "node-a")  # already there: nothing to do
    assert len(calls) == 1


def test_a_model_the_node_cannot_get_is_named_with_the_node(tmp_path):
    with pytest.raises(ModelUnavailable, match=r"model big: .*/nowhere/big does not exist on node node-b"):
        obtain_model(_spec(str(tmp_path / "nowhere" / "big"), "big"), None, "node-b")
    with pytest.raises(ModelUnavailable, match=r"'zoo-9k' is not a zoo member"):
        obtain_model(_spec(str(tmp_path / "zoo-9k"), "zoo-9k"), "zoo", "node-b")
    obtain_model(_spec("EleutherAI/pythia-70m"), None, "node-b")  # a hub id resolves where it loads: no error here


def test_a_model_that_fails_to_load_fails_its_shards_only_and_says_so_everywhere(tmp_path, tiny_conf, tiny_model_b):
    import mlflow

    broken = tmp_path / "tiny-b-broken"
    shutil.copytree(tiny_model_b, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")  # present (resolve checks), unloadable
    conf = tiny_conf / "model" / "tiny.yaml"
    conf.write_text(conf.read_text().replace(str(tiny_model_b), str(broken)))
    cfg = load(overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=12",
                             "sweep.shard_size=4", "sweep.name=broken", "cluster.num_cpus=2",
                             "tracking.live_interval=0"))
    try:
        result = sweep.run(cfg, progress=False)
    finally:
        shutdown()
    b_shards = {s.id for c in result.plan.cells if c.model.name == "tiny-b" for s in result.plan.shards_of(c.id)}
    assert set(result.failed) == b_shards and len(b_shards) == 3
    assert all("tiny-b" in e and "could not be loaded on node" in e for e in result.failed.values()), result.failed
    assert result.shards_run == 3 and [c.model for c in result.cells] == ["tiny-a"]
    assert not any(list((tmp_path / "store" / "broken" / "shards").glob(f"{s}.*parquet")) for s in b_shards)

    mlflow.set_tracking_uri(cfg.tracking.uri)
    runs = mlflow.search_runs(experiment_names=["broken"])
    by_kind = {k: g for k, g in runs.groupby("tags.orchestrator.kind")}
    assert by_kind["sweep"]["status"].tolist() == ["FAILED"]  # not FINISHED: shards failed
    assert by_kind["sweep"]["metrics.shards_failed"].tolist() == [3]
    cells = by_kind["cell"].set_index("params.size")
    assert cells.loc["tiny-a", "status"] == "FINISHED"
    assert cells.loc["tiny-b", "status"] == "FAILED"
    assert cells.loc["tiny-b", "tags.orchestrator.partial"] == "0/3 shards"
    assert cells.loc["tiny-b", "metrics.shards_failed"] == 3


def test_a_failing_shard_names_its_model_cell_and_the_example_that_fails(tmp_path, tiny_conf):
    """Inside a replica (built in-process here): the first example that fails alone is named."""
    from orchestrator.execute import ModelWorker, ShardError

    cfg = load(overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=8",
                             "sweep.shard_size=8", "tracking.enabled=false"))
    plan, tasks, _ = sweep.prepare(cfg)
    cell = plan.cells[0]
    shard = plan.shards_of(cell.id)[0]
    task = tasks[cell.task]
    worker = ModelWorker(cell.model, cfg.backend, 1)
    bad = task.examples[shard.start + 5]
    generate = worker.backend.generate

    def flaky(prompts, *args, **kwargs):
        if any(bad.input in p for p in prompts):
            raise ValueError("cannot tokenize this one")
        return generate(prompts, *args, **kwargs)

    worker.backend.generate = flaky
    with pytest.raises(ShardError) as err:
        worker.rows(task, cell, shard)
    assert err.value.error_class == "ValueError"
    text = str(err.value)
    assert f"model {cell.model.name}, shard {shard.id} ({cell.label}" in text
    assert f"example {bad.idx} (position {shard.start + 5}): ValueError: cannot tokenize this one" in text


def test_a_ray_that_cannot_start_workers_fails_within_the_timeout_saying_where_to_look(tmp_path):
    """Worker processes that die at start (a broken environment on the nodes): the check stops after the timeout
    with the reason and Ray's log folder, instead of the run waiting forever (it hung 11 minutes in a trial)."""
    import ray

    from orchestrator.execute import ClusterUnusable, check_workers_start

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "sitecustomize.py").write_text('raise SystemExit("a broken environment, on purpose")\n')
    ray.init(num_cpus=1, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(broken)}})
    try:
        t0 = time.monotonic()
        with pytest.raises(ClusterUnusable, match=r"could not start a worker process within 6 s "
                                                  r"\(cluster.start_timeout\).*logs"):
            check_workers_start(6)
        assert time.monotonic() - t0 < 30
    finally:
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False)  # a healthy Ray passes at once
    try:
        t0 = time.monotonic()
        check_workers_start(60)
        assert time.monotonic() - t0 < 30
    finally:
        ray.shutdown()
