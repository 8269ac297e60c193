"""A worker node lost in the middle of a submitted sweep (its raylet and every process under it SIGKILLed) on
the local three-node cluster: the job finishes by itself, with no resubmit, and its records equal a fault-free
local run's, record for record."""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import jobs
from orchestrator.record import Provenance
from orchestrator.store import SweepStore

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="local_cluster.sh reads /proc")]


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _records(store: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(f) for f in sorted((store / "shards").glob("*.parquet"))]
    df = pd.concat(frames, ignore_index=True).drop(columns=Provenance.columns())
    return df.sort_values(["shard_id", "example_idx"]).reset_index(drop=True)


def _worker_node_running_a_model(folder: Path):
    """(raylet, its processes) of a worker node (not the head) that runs a ModelWorker replica, or None."""
    import psutil

    for p in psutil.process_iter():
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "raylet/raylet" not in cmd or str(folder) not in cmd or "--head" in cmd:
            continue
        family = p.children(recursive=True)
        if any("ModelWorker" in " ".join(c.cmdline()) or "ModelWorker" in c.name() for c in family
               if c.is_running()):
            return p, family
    return None


def test_a_lost_worker_node_heals_without_a_resubmit(tmp_path: Path, tiny_conf: Path) -> None:
    from tests.test_local_cluster import _run, _script_env

    t0 = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="rnl-", dir="/tmp"))
    env = _script_env(folder, Path.home())
    # every shard takes a second, so the node dies mid-sweep; the nodes inherit this from `ray start`
    env.update(LOCAL_CLUSTER_HEAD_CPUS="1", LOCAL_CLUSTER_WORKER_CPUS="2", ORCHESTRATOR_FAULTS="delay@",
               ORCHESTRATOR_FAULTS_DELAY="1")
    grid = [f"hydra.searchpath=[file://{tiny_conf}]", "model=tiny", "task=[add_2]", "tasks.add_2.n=48",
            "sweep.shard_size=4", "prompt=[zero_shot]", "sweep.name=lost", "tracking.enabled=false"]
    try:
        started = _run(env, "start", "2")
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        client_env = {k: v for k, v in env.items() if not k.startswith(("LOCAL_CLUSTER_", "ORCHESTRATOR_FAULTS"))}
        for line in _run(env, "env").stdout.splitlines():
            client_env.update(w.split("=", 1) for w in shlex.split(line)[1:])
        overrides = [*grid, "cluster=ray", "cluster.cpus_per_model=1", "cluster.replicas=2",
                     f"storage.root={tmp_path / 'store'}", f"sweep.output_dir={tmp_path / 'outputs'}"]
        sub = _cli(client_env, "submit", *overrides)
        assert sub.returncode == 0, sub.stdout + sub.stderr
        job_id = re.search(r"^job: (\S+)$", sub.stdout, re.M).group(1)  # type: ignore[union-attr]
        import os

        for k, v in client_env.items():
            if k.startswith("RAY_AUTH"):
                os.environ[k] = v
        address = client_env["RAY_ADDRESS"]
        store = SweepStore(str(tmp_path / "store"), "lost")

        # wait until shards are landing and a worker node runs a replica, then kill that node outright
        deadline = time.monotonic() + 240
        victim = None
        while victim is None:
            assert time.monotonic() < deadline, "no replica ever ran on a worker node"
            assert jobs.job_state(address, job_id) not in jobs.TERMINAL, _cli(client_env, "logs", "lost",
                                                                             *overrides).stdout[-3000:]
            if len(store.done()) >= 2:
                victim = _worker_node_running_a_model(folder)
            time.sleep(0.5)
        raylet, family = victim
        done_at_kill = len(store.done())
        for p in [raylet, *family]:
            with contextlib.suppress(Exception):
                p.send_signal(signal.SIGKILL)
        t_kill = time.monotonic() - t0

        deadline = time.monotonic() + 300
        while (state := jobs.job_state(address, job_id)) not in jobs.TERMINAL:
            assert time.monotonic() < deadline, f"job still {state} 300 s after the node was lost"
            time.sleep(2)
        logs = _cli(client_env, "logs", "lost", *overrides)
        assert state == "SUCCEEDED", logs.stdout[-5000:]
        man = store.read_json("manifest.json")
        planned = {s for c in man["cells"] for s in c["shards"]}
        assert len(planned) == 24 and store.done() == planned and done_at_kill < 24
        assert "already in the store, 0 failed" in logs.stdout, logs.stdout[-3000:]
        assert "lost its replica" in logs.stdout + logs.stderr  # healed by the executor, not by luck
        assert not store.failures()

        local_env = {k: v for k, v in client_env.items() if not k.startswith("RAY_")}
        local = _cli(local_env, "run", *grid, "cluster.num_cpus=2", f"storage.root={tmp_path / 'local'}",
                     f"sweep.output_dir={tmp_path / 'local-out'}", timeout=600)
        assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
        pd.testing.assert_frame_equal(_records(tmp_path / "store" / "lost"), _records(tmp_path / "local" / "lost"))
        print(f"node loss: killed at {t_kill:.1f} s with {done_at_kill}/24 shards done; "
              f"job {state} at {time.monotonic() - t0:.1f} s")
    finally:
        with contextlib.suppress(Exception):
            _run(env, "stop", timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
        import os

        for k in [k for k in os.environ if k.startswith("RAY_AUTH")]:
            os.environ.pop(k, None)
