"""`orchestrator submit / status / logs / stop`: what a job carries, the store-based status, and (integration) a
tiny sweep submitted to a head and two workers started with infra/ray/local_cluster.sh."""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from orchestrator import jobs
from orchestrator.cli import main
from orchestrator.config import load
from orchestrator.store import SweepStore
from tests.conftest import overrides_for

REPO = Path(__file__).resolve().parents[1]


def _package(folder: Path, excludes: list[str], out: Path) -> set[str]:
    """The files Ray's own packaging puts in the working_dir zip (without .gitignore: the excludes alone)."""
    from ray._private.runtime_env.packaging import create_package

    create_package(str(folder), out, include_gitignore=False, excludes=excludes)
    with zipfile.ZipFile(out) as z:
        return {n for n in z.namelist() if not n.endswith("/")}


def _cfg(tmp_path: Path, *more: str):
    return load(["tracking.enabled=false", f"storage.root={tmp_path / 'store'}",
                 f"sweep.output_dir={tmp_path / 'outputs'}", *more])


def test_runtime_env_carries_code_and_config_but_no_store_cache_venv_or_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    keep = ["orchestrator/jobs.py", "orchestrator/results.py", "jobs/run_sweep.py", "conf/config.yaml",
            "conf/task/add_2.yaml", "tests/fixtures/results/scores.json"]
    drop = [".git/HEAD", ".venv/bin/python", "venv/lib/x.py", "results/demo/manifest.json", "outputs/demo/r.html",
            "mlruns/0/meta.yaml", "mlflow.db", "orchestrator/__pycache__/jobs.cpython-311.pyc",
            ".pytest_cache/v", ".ruff_cache/x", "orchestrator.egg-info/PKG-INFO", ".zoo/zoo-3k/model.safetensors",
            "shared_store/s1/shards/a.parquet"]
    for f in keep + drop:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("x")
    cfg = load(["cluster=ray", "tracking.enabled=false", f"storage.root={repo / 'shared_store'}"])
    env = jobs.runtime_env(cfg, repo)
    assert env["working_dir"] == str(repo)
    # env_vars show in `ray job list`: only the code version goes there (the copy has no .git), no credential
    assert list(env["env_vars"]) == ["ORCHESTRATOR_CODE_VERSION"]
    assert "/shared_store" in env["excludes"]  # a store inside the repo is not uploaded
    packed = _package(repo, env["excludes"], tmp_path / "pkg.zip")
    assert packed == set(keep)


def test_the_repos_own_package_is_small(tmp_path: Path) -> None:
    """The real checkout as a job would upload it (Ray limits a working_dir to ~100 MiB; ray #45602)."""
    cfg = _cfg(tmp_path, "cluster=ray")
    t0 = time.perf_counter()
    packed = _package(REPO, jobs.runtime_env(cfg)["excludes"], tmp_path / "pkg.zip")
    size = (tmp_path / "pkg.zip").stat().st_size
    print(f"repo package: {len(packed)} files, {size / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s")
    assert "jobs/run_sweep.py" in packed and "conf/config.yaml" in packed and "orchestrator/cli.py" in packed
    assert not [n for n in packed if n.startswith((".git/", ".venv/", "results/", "mlruns/")) or n.endswith(".db")]
    assert size < 50 * 2**20


@pytest.mark.parametrize("overrides", [
    ["experiment=demo", "cluster=ray", "storage.root=s3://b/p"],
    ["'task=[add_2, add_4]'", 'prompt.template={input} "quoted" $HOME `x`', "a=b;rm -rf /", "sweep.name=x y"],
    [],
])
def test_entrypoint_quotes_every_override(overrides: list[str]) -> None:
    entry = jobs.entrypoint(overrides)
    assert shlex.split(entry) == ["python", "jobs/run_sweep.py", *overrides]
    assert shlex.split(jobs.entrypoint(overrides, "conf2")) == ["python", "jobs/run_sweep.py", "--config-dir",
                                                               "conf2", *overrides]


def test_address_precedence() -> None:
    env = {"RAY_ADDRESS": "http://env:8265"}
    assert jobs.resolve_address("http://opt:8265", "http://cfg:8265", "http://rec:8265", env)[0] == "http://opt:8265"
    assert jobs.resolve_address(None, "http://cfg:8265", "http://rec:8265", env)[0] == "http://cfg:8265"
    assert jobs.resolve_address(None, None, "http://rec:8265", env)[0] == "http://rec:8265"
    assert jobs.resolve_address(None, None, None, env) == ("http://env:8265", "RAY_ADDRESS")
    with pytest.raises(jobs.JobsError, match="--address .*cluster.dashboard.*RAY_ADDRESS"):
        jobs.resolve_address(None, None, None, {})


@pytest.mark.parametrize(("more", "message"), [
    (["cluster=local"], "cluster.address=None.*add cluster=ray"),
    (["cluster=ray", "tracking.enabled=true", "tracking.uri=sqlite:///mlflow.db"], "tracking.uri=.*is relative"),
    (["cluster=ray", "tracking.enabled=true", "tracking.uri=mlruns"], "tracking.uri=.*is relative"),
    # Ray deletes the job's working folder once its workers exit: the report would fail after every shard ran
    (["cluster=ray", "sweep.output_dir=outputs"], "sweep.output_dir='outputs' is relative"),
    (["cluster=ray", "tracking.enabled=true", "tracking.uri=http://user:hunter2@mlflow:5000"], "carries a credential"),
])
def test_unsubmittable_sweeps_are_refused(tmp_path: Path, more: list[str], message: str) -> None:
    cfg = _cfg(tmp_path, *more)
    with pytest.raises(jobs.JobsError, match=message) as e:
        jobs.check_submittable(cfg, more)
    assert "hunter2" not in str(e.value)


@pytest.mark.parametrize("more", [
    ["cluster=ray"],
    ["cluster=ray", "tracking.enabled=true", "tracking.uri=sqlite:////shared/mlflow.db"],
    ["cluster=ray", "tracking.enabled=true", "tracking.uri=http://mlflow:5000"],
])
def test_submittable_sweeps_pass(tmp_path: Path, more: list[str]) -> None:
    jobs.check_submittable(_cfg(tmp_path, *more), more)


@pytest.mark.parametrize("override", ["storage.root=results", "storage.root=memory://x", "model.sizes=[nope]"])
def test_submit_refuses_bad_config_before_sending_anything(tmp_path: Path, capsys, override: str) -> None:
    code = main(["submit", "cluster=ray", "tracking.enabled=false", override, "--address", "http://127.0.0.1:9"])
    assert code == 2
    assert override.split("=", 1)[0] in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _store_with_half_the_shards(tmp_path: Path, tiny_conf: Path) -> tuple[list[str], SweepStore, dict]:
    """A real plan's manifest in a store, and its even-numbered shards written through SweepStore."""
    from orchestrator.sweep import manifest, prepare

    overrides = overrides_for(tmp_path, tiny_conf, "task=[add_2]", "tasks.add_2.n=12", "sweep.shard_size=5",
                              "prompt=[zero_shot,three_shot]", "sweep.name=st", "tracking.enabled=false")
    cfg = load(overrides)
    plan, tasks, store = prepare(cfg)
    man = manifest(cfg, plan, tasks)
    store.write_json("manifest.json", man)
    for i, s in enumerate(plan.shards):
        if i % 2 == 0:
            store.write_shard(s.id, [{"example": s.start}])
    return overrides, store, man


def test_status_counts_done_and_missing_shards_per_cell(tmp_path: Path, tiny_conf: Path, capsys) -> None:
    overrides, store, man = _store_with_half_the_shards(tmp_path, tiny_conf)
    shards = [s for c in man["cells"] for s in c["shards"]]
    done = set(shards[::2])
    assert store.done() == done
    cells = jobs.progress(man, done)
    assert len(cells) == 4 and all(c.total == 3 for c in cells)  # 2 sizes x 2 prompts; 12 examples in shards of 5
    assert [c.done for c in cells] == [sum(s in done for s in c["shards"]) for c in man["cells"]]
    assert sum(c.done for c in cells) == len(done) == 6 and sum(c.missing for c in cells) == 6

    assert main(["status", "st", *overrides]) == 0
    out = capsys.readouterr().out
    assert "shards: 6 done, 6 missing, 12 total; cells: 0 of 4 complete" in out
    for c, m in zip(cells, man["cells"], strict=True):
        assert re.search(rf"\s{c.done}\s+0\s+{c.missing}\s+3\s+{m['id']}\n", out)
    assert "job: none recorded" in out and "driver: none running" in out


def test_status_says_when_the_cluster_cannot_be_reached_without_hanging(tmp_path: Path, tiny_conf: Path,
                                                                        capsys) -> None:
    overrides, store, _ = _store_with_half_the_shards(tmp_path, tiny_conf)
    jobs.record_job(store, "raysubmit_old", "http://127.0.0.1:9", "python jobs/run_sweep.py")
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"http://127.0.0.1:{silent.getsockname()[1]}"
        jobs.record_job(store, "raysubmit_new", addr, "python jobs/run_sweep.py")
        assert [j["job_id"] for j in jobs.recorded_jobs(store)] == ["raysubmit_old", "raysubmit_new"]
        t0 = time.monotonic()
        assert main(["status", "st", "--timeout", "1", *overrides]) == 0
        assert time.monotonic() - t0 < 15
    out = capsys.readouterr().out
    assert "shards: 6 done" in out
    assert f"job raysubmit_new: unknown: the Ray Jobs API at {addr} did not answer within 1 s" in out
    closed = f"http://127.0.0.1:{_free_port()}"
    assert main(["status", "st", "--address", closed, *overrides]) == 0
    assert f"job raysubmit_new: unknown: cannot reach the Ray Jobs API at {closed}" in capsys.readouterr().out


def test_unknown_sweep_and_no_job_are_clear_errors(tmp_path: Path, tiny_conf: Path, capsys) -> None:
    overrides, _, _ = _store_with_half_the_shards(tmp_path, tiny_conf)
    for cmd in ("status", "logs", "stop"):
        assert main([cmd, "nosuch", *overrides]) == 2
        assert "no sweep 'nosuch' in store" in capsys.readouterr().err
    for cmd in ("logs", "stop"):
        assert main([cmd, "st", *overrides]) == 2
        assert "no job recorded for sweep 'st'" in capsys.readouterr().err


# -- integration: the local cluster --------------------------------------------------------------------------------
def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="local_cluster.sh reads /proc")
def test_submit_a_tiny_sweep_to_a_head_and_two_workers(tmp_path: Path, tiny_conf: Path) -> None:
    from tests.test_local_cluster import _run, _script_env, _state

    t0 = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="rlj-", dir="/tmp"))  # short: Ray's socket paths live below it
    env = _script_env(folder, Path.home())
    env.update(LOCAL_CLUSTER_HEAD_CPUS="1", LOCAL_CLUSTER_WORKER_CPUS="2")
    try:
        started = _run(env, "start", "2")
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        t_up = time.monotonic() - t0
        client_env = {k: v for k, v in env.items() if not k.startswith("LOCAL_CLUSTER_")}
        exports = _run(env, "env")
        assert exports.returncode == 0, exports.stderr
        for line in exports.stdout.splitlines():  # eval "$(infra/ray/local_cluster.sh env)"
            client_env.update(w.split("=", 1) for w in shlex.split(line)[1:])
        assert client_env["RAY_ADDRESS"] == _state(folder)["DASHBOARD_URL"]

        overrides = overrides_for(tmp_path, tiny_conf, "cluster=ray", "cluster.cpus_per_model=1", "task=[add_2]",
                                  "tasks.add_2.n=12", "sweep.shard_size=4", "prompt=[zero_shot]", "sweep.name=sub",
                                  "tracking.enabled=false")
        sub = _cli(client_env, "submit", *overrides)
        assert sub.returncode == 0, sub.stdout + sub.stderr
        job_id = re.search(r"^job: (\S+)$", sub.stdout, re.M).group(1)  # type: ignore[union-attr]
        assert re.search(r"^sweep: sub$", sub.stdout, re.M)
        t_submit = time.monotonic() - t0
        store = SweepStore(str(tmp_path / "store"), "sub")
        assert [j["job_id"] for j in jobs.recorded_jobs(store)] == [job_id]

        deadline = time.monotonic() + 180
        while True:
            st = _cli(client_env, "status", "sub", *overrides)
            assert st.returncode == 0, st.stdout + st.stderr
            state = re.search(rf"^job {job_id}: (\w+)", st.stdout, re.M)
            assert state, st.stdout
            if state.group(1) in jobs.TERMINAL:
                break
            assert time.monotonic() < deadline, f"job still {state.group(1)} after 180 s:\n{st.stdout}"
            time.sleep(3)
        logs = _cli(client_env, "logs", "sub", *overrides)
        assert state.group(1) == "SUCCEEDED", st.stdout + logs.stdout[-5000:] + logs.stderr
        assert logs.returncode == 0 and "shards: 6 run" in logs.stdout, logs.stdout[-3000:]

        man = store.read_json("manifest.json")
        planned = {s for c in man["cells"] for s in c["shards"]}
        assert len(man["cells"]) == 2 and len(planned) == 6  # 2 sizes x 1 prompt; 12 examples in shards of 4
        assert store.done() == planned
        assert "shards: 6 done, 0 missing, 6 total; cells: 2 of 2 complete" in st.stdout
        # the job's copy has no .git: the manifest keeps the submitter's commit all the same
        submitted = jobs.recorded_jobs(store)[0]["code_version"]
        assert man["code_version"] == submitted and "+" in submitted and "unknown" not in submitted

        stop = _cli(client_env, "stop", "sub", *overrides)
        assert stop.returncode == 0 and "already SUCCEEDED, nothing to stop" in stop.stdout, stop.stdout + stop.stderr

        # a second sweep, stopped while it is pending or running
        more = [*overrides, "sweep.name=sub2", "tasks.add_2.n=48"]
        sub2 = _cli(client_env, "submit", *more)
        assert sub2.returncode == 0, sub2.stdout + sub2.stderr
        job2 = re.search(r"^job: (\S+)$", sub2.stdout, re.M).group(1)  # type: ignore[union-attr]
        stop = _cli(client_env, "stop", "sub2", *more)
        assert stop.returncode == 0 and f"job {job2}: stop requested" in stop.stdout, stop.stdout + stop.stderr
        deadline = time.monotonic() + 60
        while f"job {job2}: STOPPED" not in (st := _cli(client_env, "status", "sub2", *more)).stdout:
            assert time.monotonic() < deadline, st.stdout
            time.sleep(2)
        print(f"submit test: cluster up {t_up:.1f} s, submitted at {t_submit:.1f} s, "
              f"both jobs checked at {time.monotonic() - t0:.1f} s")
    finally:
        with contextlib.suppress(Exception):
            _run(env, "stop", timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_status_says_whether_a_driver_runs_the_sweep(tmp_path: Path, tiny_conf: Path, capsys) -> None:
    overrides, store, _ = _store_with_half_the_shards(tmp_path, tiny_conf)
    lease = store.acquire_driver()
    try:
        assert main(["status", "st", *overrides]) == 0
        assert f"driver: running on {socket.gethostname()} pid {__import__('os').getpid()} since" in \
            capsys.readouterr().out
    finally:
        lease.release()
    assert main(["status", "st", *overrides]) == 0
    assert "driver: none running" in capsys.readouterr().out
