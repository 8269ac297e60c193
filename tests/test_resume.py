"""The driver killed mid-sweep (SIGKILL to its whole process group, Ray included): `orchestrator resume` completes
the sweep, recomputes no shard that finished before the kill, and leaves exactly one MLflow run per cell."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import REPO, overrides_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a process group")


def _shards(store: Path) -> set[str]:
    folder = store / "shards"
    return {p.stem for p in folder.glob("*.parquet") if not p.name.startswith(".")} if folder.exists() else set()


def test_a_killed_driver_is_resumed_without_recomputing_finished_shards(tmp_path: Path, tiny_conf: Path) -> None:
    overrides = overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=40",
                              "sweep.shard_size=4", "sweep.name=killed", "cluster.num_cpus=2",
                              "tracking.live_interval=0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    slow = {**env, "ORCHESTRATOR_FAULTS": "delay@", "ORCHESTRATOR_FAULTS_DELAY": "0.5"}
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", "-q", *overrides], env=slow, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    store = tmp_path / "store" / "killed"
    deadline = time.monotonic() + 240
    while len(_shards(store)) < 4:
        assert driver.poll() is None, "the driver ended before it could be killed"
        assert time.monotonic() < deadline, "no shard landed in 240 s"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    time.sleep(3)  # Ray's processes share the driver's fate; give a write in flight time to land or vanish
    before = _shards(store)
    assert 4 <= len(before) < 20

    resumed = subprocess.run([sys.executable, "-m", "orchestrator.cli", "resume", "killed", "--root",
                              str(tmp_path / "store")], env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    counts = re.search(r"shards: (\d+) run, (\d+) already in the store, (\d+) failed", resumed.stdout)
    assert counts, resumed.stdout[-2000:]
    assert (int(counts[1]), int(counts[2]), int(counts[3])) == (20 - len(before), len(before), 0)
    assert len(_shards(store)) == 20 and before <= _shards(store)

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["killed"])
    assert runs["tags.orchestrator.kind"].value_counts().to_dict() == {"sweep": 1, "cell": 2, "curve": 1}
    assert set(runs["status"]) == {"FINISHED"}
