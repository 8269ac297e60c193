"""A sweep as cluster users run it: three Ray nodes started with infra/ray/local_cluster.sh, a real `mlflow
server`, shards on a local S3 server (moto), submitted with `orchestrator submit` and followed with `status`.

What it must show: every shard in the bucket, shards run on more than one node, the same numbers as the same
sweep run locally, exactly one MLflow run per cell, cell runs visible while the sweep still runs, and the S3
secret (given to the nodes' environment) nowhere in the job's record, its logs, the manifest or MLflow.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import jobs
from orchestrator.store import SweepStore
from tests.conftest import mlflow_server

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-only-on-the-nodes-7f2c"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="local_cluster.sh reads /proc")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_sweep_on_three_nodes_with_s3_store_and_tracking_server(tmp_path: Path, tiny_conf: Path,
                                                               monkeypatch) -> None:
    import boto3
    from mlflow.tracking import MlflowClient
    from moto.server import ThreadedMotoServer

    from tests.test_local_cluster import _run, _script_env

    t0 = time.monotonic()
    creds = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in creds.items():
        monkeypatch.setenv(k, v)
    s3_port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{s3_port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="sweeps")

    folder = Path(tempfile.mkdtemp(prefix="rcs-", dir="/tmp"))  # short: Ray's socket paths live below it
    env = _script_env(folder, Path.home())
    env.update(LOCAL_CLUSTER_HEAD_CPUS="1", LOCAL_CLUSTER_WORKER_CPUS="2", **creds)  # credentials: the nodes' env
    try:
        with mlflow_server(tmp_path / "mlflow") as mlflow_port:
            started = _run(env, "start", "2")
            assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
            client_env = {k: v for k, v in env.items() if not k.startswith("LOCAL_CLUSTER_")}
            for line in _run(env, "env").stdout.splitlines():  # eval "$(infra/ray/local_cluster.sh env)"
                client_env.update(w.split("=", 1) for w in shlex.split(line)[1:])
            address = client_env["RAY_ADDRESS"]
            for k, v in client_env.items():  # this process asks the Jobs API too (the cluster's token)
                if k.startswith("RAY_AUTH"):
                    monkeypatch.setenv(k, v)
            tracking = f"http://127.0.0.1:{mlflow_port}"
            grid = [f"hydra.searchpath=[file://{tiny_conf}]", "model=tiny", "task=[add_2]", "tasks.add_2.n=60",
                    "sweep.shard_size=5", "prompt=[zero_shot,three_shot]", "sweep.name=live"]
            overrides = [*grid, "cluster=ray", "cluster.cpus_per_model=1", "cluster.replicas=2",
                         "storage=s3", "storage.root=s3://sweeps/orch", f"+storage.options.endpoint_url={endpoint}",
                         "tracking=server", f"tracking.uri={tracking}", "tracking.live_interval=0",
                         f"sweep.output_dir={tmp_path / 'outputs'}"]

            sub = _cli(client_env, "submit", *overrides)
            assert sub.returncode == 0, sub.stdout + sub.stderr
            job_id = re.search(r"^job: (\S+)$", sub.stdout, re.M).group(1)  # type: ignore[union-attr]

            mlflow = MlflowClient(tracking)
            seen_live = None  # (cell runs, parent status) seen while the job was still running
            statuses = []
            deadline = time.monotonic() + 300
            while (state := jobs.job_state(address, job_id)) not in jobs.TERMINAL:
                assert time.monotonic() < deadline, f"job still {state} after 300 s"
                exp = mlflow.get_experiment_by_name("live")
                if exp is not None and seen_live is None:
                    cells = mlflow.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'cell'")
                    parents = mlflow.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'sweep'")
                    if cells and jobs.job_state(address, job_id) not in jobs.TERMINAL:
                        seen_live = (len(cells), parents[0].info.status if parents else None)
                if len(statuses) < 1 and state == "RUNNING":
                    statuses.append(_cli(client_env, "status", "live", *overrides))
                time.sleep(0.3)
            logs = _cli(client_env, "logs", "live", *overrides)
            assert state == "SUCCEEDED", logs.stdout[-5000:] + logs.stderr[-2000:]
            t_job = time.monotonic() - t0

            # followed with `orchestrator status`, during and after
            assert statuses and statuses[0].returncode == 0 and f"job {job_id}: " in statuses[0].stdout, statuses
            final = _cli(client_env, "status", "live", *overrides)
            assert "shards: 48 done, 0 missing, 48 total; cells: 4 of 4 complete" in final.stdout, final.stdout

            # every shard in the bucket, and more than one node ran them
            store = SweepStore("s3://sweeps/orch", "live", {"endpoint_url": endpoint})
            man = store.read_json("manifest.json")
            planned = {s for c in man["cells"] for s in c["shards"]}
            assert len(planned) == 48 and store.done() == planned
            rows = store.read_shards(sorted(planned))
            assert rows["node"].nunique() > 1, rows["node"].value_counts()
            models = {c["id"]: c["model"] for c in man["cells"]}
            per_model = rows.assign(model=rows["cell_id"].map(models)).groupby(["worker", "model"])
            assert per_model["load_seconds"].nunique().eq(1).all()  # each replica loaded each of its models once

            # one MLflow run per cell, none duplicated, all finished; cell runs were there before the end
            exp = mlflow.get_experiment_by_name("live")
            runs = mlflow.search_runs([exp.experiment_id], max_results=1000)
            kinds = pd.Series([r.data.tags.get("orchestrator.kind") for r in runs]).value_counts().to_dict()
            assert kinds == {"sweep": 1, "cell": 4, "curve": 2}, kinds
            cell_ids = sorted(r.data.tags["orchestrator.cell_id"] for r in runs
                              if r.data.tags.get("orchestrator.kind") == "cell")
            assert cell_ids == sorted(c["id"] for c in man["cells"])
            assert {r.info.status for r in runs} == {"FINISHED"}
            parent = next(r for r in runs if r.data.tags.get("orchestrator.kind") == "sweep")
            assert parent.data.metrics["shards_done"] == 48 and parent.data.metrics["shards_failed"] == 0
            done_history = mlflow.get_metric_history(parent.info.run_id, "shards_done")
            assert len(done_history) > 2  # progress over time, not one number at the end
            assert seen_live is not None, "no cell run appeared in MLflow while the job ran"
            assert seen_live[1] == "RUNNING", seen_live

            # the S3 secret lives on the nodes only
            from ray.job_submission import JobSubmissionClient

            info = JobSubmissionClient(address, headers=jobs.auth_headers()).get_job_info(job_id)
            assert SECRET not in repr(info) and SECRET not in logs.stdout + logs.stderr
            assert SECRET not in store.read_text("manifest.json")
            assert not any(SECRET in v for r in runs for v in [*r.data.params.values(), *r.data.tags.values()])

            # the same sweep run locally gives the same numbers
            local_env = {k: v for k, v in client_env.items() if not k.startswith("RAY_")}
            local = _cli(local_env, "run", *grid, "cluster.num_cpus=2", f"storage.root={tmp_path / 'local'}",
                         "tracking.enabled=false", f"sweep.output_dir={tmp_path / 'local-out'}", timeout=600)
            assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
            on_cluster = pd.read_csv(store.fs.open(f"{store._path}/cells.csv")).drop(columns=["nodes"])
            here = pd.read_csv(tmp_path / "local" / "live" / "cells.csv").drop(columns=["nodes"], errors="ignore")
            pd.testing.assert_frame_equal(on_cluster, here, check_exact=False, rtol=1e-9)
            print(f"cluster sweep: job done at {t_job:.1f} s, all checked at {time.monotonic() - t0:.1f} s; "
                  f"cell runs seen live: {seen_live}")
    finally:
        with contextlib.suppress(Exception):
            _run(env, "stop", timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
        moto.stop()
        os.environ.pop("RAY_ADDRESS", None)
