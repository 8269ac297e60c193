"""The driver killed mid-sweep (SIGKILL to its whole process group, Ray included): `orchestrator resume` completes
the sweep, recomputes no shard that finished before the kill, and leaves exactly one MLflow run per cell."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import REPO, overrides_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a process group")


def _shards(store: Path) -> set[str]:
    folder = store / "shards"
    return {p.name.split(".")[0] for p in folder.glob("*.parquet") if not p.name.startswith(".")} \
        if folder.exists() else set()


def _resume(sweep: str, root: Path, env: dict[str, str]) -> tuple[int, int, int]:
    """`orchestrator resume <sweep> --root <root>` as a user runs it: (shards run, already stored, failed)."""
    resumed = subprocess.run([sys.executable, "-m", "orchestrator.cli", "resume", sweep, "--root", str(root)],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    counts = re.search(r"shards: (\d+) run, (\d+) already in the store, (\d+) failed", resumed.stdout)
    assert counts, resumed.stdout[-2000:]
    return int(counts[1]), int(counts[2]), int(counts[3])


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

    assert _resume("killed", tmp_path / "store", env) == (20 - len(before), len(before), 0)
    assert len(_shards(store)) == 20 and before <= _shards(store)

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["killed"])
    assert runs["tags.orchestrator.kind"].value_counts().to_dict() == {"sweep": 1, "cell": 2, "curve": 1}
    assert set(runs["status"]) == {"FINISHED"}


def _processes_under(folder: Path) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(folder) in (proc / "cmdline").read_text(errors="replace"):
                    out.append(int(proc.name))
            except OSError:
                pass
    return out


def test_ctrl_c_stops_within_seconds_leaves_no_ray_process_and_resume_finishes(tmp_path: Path,
                                                                              tiny_conf: Path) -> None:
    import shutil
    import tempfile

    overrides = overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=40",
                              "sweep.shard_size=4", "sweep.name=ctrlc", "cluster.num_cpus=2")
    ray_tmp = Path(tempfile.mkdtemp(prefix="rsi-", dir="/tmp"))  # this run's Ray processes all name it
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    slow = {**env, "RAY_TMPDIR": str(ray_tmp), "ORCHESTRATOR_FAULTS": "delay@", "ORCHESTRATOR_FAULTS_DELAY": "0.5"}
    try:
        # as a terminal starts it: Ctrl-C not ignored. A shell's background job (`bash .ci/run &`) ignores SIGINT
        # and every process it starts inherits that (Python then installs no KeyboardInterrupt handler)
        driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", "-q", *overrides], env=slow,
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        store = tmp_path / "store" / "ctrlc"
        deadline = time.monotonic() + 240
        while len(_shards(store)) < 3:
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert _processes_under(ray_tmp)  # Ray runs under its own folder
        os.kill(driver.pid, signal.SIGUSR1)  # README: every thread's stack on stderr, and the sweep goes on
        time.sleep(0.5)
        assert driver.poll() is None
        t0 = time.monotonic()
        os.killpg(driver.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the foreground group
        # too slow: at 8 s ask it where each thread is (the CLI dumps its stacks on USR1), for the failure message
        spy = threading.Timer(8, lambda: driver.poll() is None and os.kill(driver.pid, signal.SIGUSR1))
        spy.start()
        _, err = driver.communicate(timeout=60)
        spy.cancel()
        took = time.monotonic() - t0
        assert took < 10, f"took {took:.1f} s to stop; its stderr (with its stacks at 8 s) ends:\n{err[-8000:]}"
        assert driver.returncode == 130, err[-3000:]
        assert "interrupted:" in err and "nothing finished is lost" in err and "Traceback" not in err, err[-3000:]
        assert "(most recent call first)" in err and "orchestrator/execute.py" in err, err[-3000:]  # the USR1 dump
        assert f"orchestrator resume ctrlc --root {tmp_path / 'store'}" in err
        time.sleep(1)
        assert _processes_under(ray_tmp) == [], "Ray processes of the interrupted run remain"
        before = _shards(store)

        assert _resume("ctrlc", tmp_path / "store", env) == (20 - len(before), len(before), 0)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
