"""Two drivers on one sweep (issue 11): the store's driver lease lets one run it; the other refuses, naming it.

Two real `orchestrator run` processes on the same sweep, started together, with a real local Ray cluster
each and one SQLite MLflow store: one completes, the other exits 2 naming the first's host and pid (or, if
the first finished before the second reached the lease, the second finds every shard done and runs none).
Every shard is computed once and MLflow has exactly one run per cell.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import mlflow
import pytest

from tests.conftest import REPO, overrides_for

pytestmark = pytest.mark.integration


def test_two_drivers_started_together(tmp_path, tiny_conf):
    args = overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=8",
                         "sweep.shard_size=4", "sweep.name=twin", "cluster.num_cpus=1", "backend.batch_size=8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", "-q", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    print("exit codes", codes)
    ran = [int(m.group(1)) for out, _ in outs for m in [re.search(r"shards: (\d+) run", out)] if m]
    if sorted(codes) == [0, 2]:
        winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
        err = outs[loser][1]
        assert "being run by another driver" in err and socket.gethostname() in err
        assert f"pid {procs[winner].pid}" in err and "started" in err
        assert "Traceback" not in err
        assert ran == [4]
    else:
        assert codes == [0, 0], outs
        assert sorted(ran) == [0, 4]  # each shard computed once
    assert not (tmp_path / "store" / "twin" / "driver.json").exists()  # released
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["twin"])
    assert sorted(runs["tags.orchestrator.kind"]) == ["cell"] * 2 + ["curve"] + ["sweep"]
    assert runs["tags.orchestrator.cell_id"].dropna().nunique() == 2
