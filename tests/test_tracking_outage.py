"""A tracking server that goes away mid-sweep (issue 11): the results land in the store, the run ends with a
clear message in bounded time, and `orchestrator sync` brings MLflow to a fault-free run's state.

Real parts: a real `mlflow server` (SQLite) stopped when the sweep's first shard lands and later restarted
on the same port and database; a fault-free reference run of the same grid on a SQLite tracking store.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from orchestrator import live, sweep
from orchestrator.cli import main
from orchestrator.config import load
from orchestrator.execute import shutdown
from tests.conftest import overrides_for

pytestmark = pytest.mark.integration
GRID = ["task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=8", "sweep.shard_size=4", "sweep.name=outage",
        "cluster.num_cpus=2", "backend.batch_size=8", "tracking.live_interval=0"]


def _state(uri: str) -> tuple[dict, dict, set]:
    """Run counts per kind, each cell's metrics (timings aside), and the statuses."""
    runs = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("outage").experiment_id], max_results=1000)
    kinds: dict[str, int] = {}
    for r in runs:
        kinds[r.data.tags["orchestrator.kind"]] = kinds.get(r.data.tags["orchestrator.kind"], 0) + 1
    cells = {r.data.tags["orchestrator.cell_id"]: {k: v for k, v in r.data.metrics.items() if "seconds" not in k}
             for r in runs if r.data.tags["orchestrator.kind"] == "cell"}
    return kinds, cells, {r.info.status for r in runs}


def _serve(folder: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:`port` with its SQLite store in `folder`, once it answers /health."""
    exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    proc = subprocess.Popen(
        [exe, "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--default-artifact-root",
         str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if time.time() > deadline:
            _stop(proc)
            pytest.fail("mlflow server did not come up in 90 s")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server _serve started (its process group: the server and its workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_tracking_server_stops_mid_sweep_then_sync(tmp_path, tiny_conf, monkeypatch, caplog):
    ref_dir, srv_dir = tmp_path / "ref", tmp_path / "srv"
    ref_dir.mkdir()
    srv_dir.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = None
    try:
        sweep.run(load(overrides_for(ref_dir, tiny_conf, *GRID)), progress=False)
        reference = _state(f"sqlite:///{ref_dir / 'mlflow.db'}")
        assert reference[0] == {"sweep": 1, "cell": 2, "curve": 1} and reference[2] == {"FINISHED"}

        server = _serve(srv_dir, port)
        cfg = load(overrides_for(tmp_path, tiny_conf, *GRID, f"tracking.uri=http://127.0.0.1:{port}"))
        stopped: list[float] = []
        original = live.LiveView.shard_done

        def stop_then_land(self, shard, outcome=None):
            if not stopped:  # the first shard has landed: the tracking server goes away
                _stop(server)
                stopped.append(time.monotonic())
            return original(self, shard, outcome)

        monkeypatch.setattr(live.LiveView, "shard_done", stop_then_land)
        with caplog.at_level(logging.WARNING):
            result = sweep.run(cfg, progress=False)
        took = time.monotonic() - stopped[0]
        assert result.failed == {} and result.parent_run_id is None
        assert len(list((tmp_path / "store" / "outage" / "shards").glob("*.parquet"))) == 4  # all in the store
        assert f"orchestrator sync outage --root {tmp_path / 'store'}" in caplog.text
        assert took < 120, f"{took:.0f} s after the server stopped"  # no 250 s hang on MLflow's retries

        server = _serve(srv_dir, port)  # back, on the same port and database
        assert main(["sync", "outage", "--root", str(tmp_path / "store")]) == 0
        assert main(["sync", "outage", "--root", str(tmp_path / "store")]) == 0  # again: nothing twice
        synced = _state(f"http://127.0.0.1:{port}")
        assert synced[0] == reference[0] and synced[2] == reference[2]  # runs per kind, all FINISHED
        assert synced[1].keys() == reference[1].keys()
        for cell, metrics in reference[1].items():  # each cell's metrics, key by key
            assert synced[1][cell] == metrics, (cell, set(synced[1][cell]) ^ set(metrics))
    finally:
        shutdown()
        if server is not None:
            _stop(server)
