"""infra/ray/local_cluster.sh, started for real: a head and two workers, a job through the dashboard, a scoped stop.

The script's settings and a fake HOME go only to its subprocesses (never os.environ), so tests in this process
that call a local `ray.init()` are not affected, and a separately started local Ray cluster must survive `stop`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "infra" / "ray" / "local_cluster.sh"
BIN = Path(sys.executable).parent

# Stays up until its stdin closes; on each line it runs a task on its own local cluster and prints the result.
SURVIVOR = """
import sys, ray
ray.init(num_cpus=1, include_dashboard=False)
f = ray.remote(lambda: 1)
print("up", flush=True)
for _ in sys.stdin:
    print("ok", ray.get(f.remote(), timeout=30), flush=True)
"""


def _free_ports(n: int, consecutive: int = 1) -> list[int]:
    """n distinct free ports from the OS's ephemeral range (outside Ray's worker range 10002-19999)."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        block = range(p, p + consecutive)
        if any(q in ports for q in block):
            continue
        with contextlib.ExitStack() as stack:
            try:
                for q in block:
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", q))
            except OSError:
                continue
        ports.append(p)
    return ports


def _script_env(folder: Path, home: Path) -> dict[str, str]:
    gcs, dashboard, client = _free_ports(3)
    (agent,) = _free_ports(1, consecutive=3)  # head, worker 1 and worker 2 use agent, agent+1, agent+2
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "LOCAL_CLUSTER_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        LOCAL_CLUSTER_DIR=str(folder),
        LOCAL_CLUSTER_GCS_PORT=str(gcs),
        LOCAL_CLUSTER_DASHBOARD_PORT=str(dashboard),
        LOCAL_CLUSTER_CLIENT_PORT=str(client),
        LOCAL_CLUSTER_AGENT_PORT=str(agent),
        LOCAL_CLUSTER_OBJECT_STORE_MB="100",
    )
    return env


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _state(folder: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (folder / "cluster.env").read_text().splitlines() if "=" in line)


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _alive(pid: int, folder: Path) -> bool:
    """True if pid runs and is still one of the cluster's (its command line names the folder or it is a worker)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status and (str(folder) in cmd or cmd.startswith("ray::"))


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to check processes are gone")
def test_head_two_workers_job_and_scoped_stop() -> None:
    t0 = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="rlc-", dir="/tmp"))  # short: Ray's socket paths live below it
    home = folder / "home"
    # The original failure: a ~/.ray/auth_token (written by any local ray.init()) switched token auth on for
    # the head only, so the workers were rejected. Here it exists, with a token that is not the cluster's.
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("f" * 64)
    env = _script_env(folder, home)
    survivor_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    survivor = subprocess.Popen(
        [sys.executable, "-c", SURVIVOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=survivor_env,
    )
    try:
        started = _run(env, "start", "2")
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        state = _state(folder)
        dashboard = state["DASHBOARD_URL"]
        assert dashboard == f"http://127.0.0.1:{env['LOCAL_CLUSTER_DASHBOARD_PORT']}"
        assert state["GCS_ADDRESS"] == f"127.0.0.1:{env['LOCAL_CLUSTER_GCS_PORT']}"
        assert dashboard in started.stdout and state["GCS_ADDRESS"] in started.stdout
        assert state["AUTH_MODE"] == "token"
        token = Path(state["AUTH_TOKEN_PATH"]).read_text().strip()
        assert token != "f" * 64 and oct(Path(state["AUTH_TOKEN_PATH"]).stat().st_mode & 0o777) == "0o600"
        headers = {"Authorization": f"Bearer {token}"}

        # Three nodes alive, seen through the dashboard's state API (the token goes in a header, not os.environ).
        req = urllib.request.Request(f"{dashboard}/api/v0/nodes?limit=100", headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            nodes = json.load(r)["data"]["result"]["result"]
        assert sorted(n["state"] for n in nodes) == ["ALIVE"] * 3, nodes
        assert sum(n["is_head_node"] for n in nodes) == 1

        from ray.job_submission import JobStatus, JobSubmissionClient

        client = JobSubmissionClient(dashboard, headers=headers)
        job = client.submit_job(entrypoint='python -c "print(42)"')
        deadline = time.monotonic() + 60
        while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
            assert time.monotonic() < deadline, f"job {job} still {status} after 60 s"
            time.sleep(0.5)
        assert status == JobStatus.SUCCEEDED, client.get_job_logs(job)
        assert client.get_job_logs(job).strip().splitlines()[-1] == "42"

        # The separate local cluster is up before the stop, so the stop has something it must leave alone.
        assert survivor.stdout is not None and survivor.stdin is not None
        assert survivor.stdout.readline().strip() == "up"
        ours = [int(p) for p in state["PIDS"].split(",")]
        assert ours and survivor.pid not in ours

        stopped = _run(env, "stop", timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert [p for p in ours if _alive(p, folder)] == []
        left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _alive(int(p.name), folder)]
        assert [p for p in left if str(folder) in Path(f"/proc/{p}/cmdline").read_text(errors="replace")] == []
        assert not (folder / "cluster.env").exists()
        gcs = f":{env['LOCAL_CLUSTER_GCS_PORT']}"  # the head's Ray Client proxy names neither folder nor parent
        proxies = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()
                   and "ray.util.client.server" in (cmd := _cmdline(p)) and any(
                       a.startswith("--address=") and a.endswith(gcs) for a in cmd.split("\0"))]
        assert proxies == [], "the cluster's Ray Client server outlived stop"

        survivor.stdin.write("again\n")
        survivor.stdin.flush()
        assert survivor.stdout.readline().strip() == "ok 1", "the separately started Ray cluster did not survive stop"
    finally:
        with contextlib.suppress(Exception):
            _run(env, "stop", timeout=60)
        with contextlib.suppress(Exception):
            survivor.stdin.close()  # type: ignore[union-attr]
            survivor.wait(timeout=30)
        if survivor.poll() is None:
            survivor.kill()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"local cluster test: {time.monotonic() - t0:.1f} s")


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("LOCAL_CLUSTER_AUTH", "none", "is not 'token' or 'disabled'"),
        ("LOCAL_CLUSTER_CLIENT_PORT", "10391", "worker port range"),
        ("LOCAL_CLUSTER_HEAD_CPUS", "two", "not a non-negative integer"),
        ("LOCAL_CLUSTER_DIR", "rel/dir", "must be an absolute path"),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(tmp_path: Path, var: str, value: str, message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCAL_CLUSTER_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", LOCAL_CLUSTER_DIR=str(tmp_path / "c"))
    env[var] = value
    out = _run(env, "start", "2", timeout=30)
    assert out.returncode == 2 and var in out.stderr and message in out.stderr, out.stderr
    assert not (tmp_path / "c").exists()
