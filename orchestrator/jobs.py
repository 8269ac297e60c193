"""Submitting a sweep to a Ray cluster and following it: the Ray Jobs edge. The only module that imports
ray.job_submission.

`orchestrator submit` uploads this repository (code and conf/, without stores, caches, venvs or .git) as the
job's working_dir and runs `python jobs/run_sweep.py <overrides>` on the cluster; it records the job id in the
store (`{root}/{sweep}/jobs.json`) so `status`, `logs` and `stop` find the job by the sweep's name. The store is
the truth of progress (manifest.json lists every cell's shards; a shard file that exists is done); the Jobs API
only adds the job's state.

Credentials never go into the job's runtime environment: its env_vars and entrypoint show in `ray job list`
and the dashboard (a credential in an override is refused). The nodes' own environment (or the cloud's
identity) provides them.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.config import SweepConfig

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = "jobs/run_sweep.py"
JOBS_FILE = "jobs.json"
TIMEOUT_S = 10.0  # a Jobs API call that has not answered by then is reported as unreachable, not waited on

# gitignore syntax, relative to the working_dir (Ray's `excludes`). Anchored ("/results") where only the repo's own
# top-level folder is meant, so orchestrator/results.py or a task folder called results still travels.
EXCLUDES: tuple[str, ...] = (
    ".git", ".venv", "venv", ".tox", ".nox", "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache",
    ".ruff_cache", ".mypy_cache", ".ipynb_checkpoints", "/results", "/outputs", "/mlruns", "/mlartifacts",
    "*.db", ".zoo", "/.whl", "/.gl",
)
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})

T = TypeVar("T")


class JobsError(Exception):
    """A submission or a query that cannot go ahead; the message says why and how to fix it."""


# -- what is submitted --------------------------------------------------------------------------------------------
def resolve_address(option: str | None, configured: str | None, recorded: str | None = None,
                    env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(address, where it came from): --address, then cluster.dashboard, then the address the job was submitted to
    (status/logs/stop), then RAY_ADDRESS. Explicit settings win over ambient ones."""
    for value, where in ((option, "--address"), (configured, "cluster.dashboard"),
                         (recorded, f"{JOBS_FILE} (where the job was submitted)"),
                         (env.get("RAY_ADDRESS"), "RAY_ADDRESS")):
        if value:
            return value, where
    raise JobsError(
        "no Ray Jobs address: pass --address http://HEAD:8265, set cluster.dashboard=http://HEAD:8265, or export "
        "RAY_ADDRESS (for the local cluster: eval \"$(infra/ray/local_cluster.sh env)\")"
    )


def inside_repo(path: str, repo: Path) -> str | None:
    """`path` relative to `repo` if it is a local path inside it, else None."""
    if path.startswith("file://"):
        path = path[len("file://"):]
    elif "://" in path or "::" in path:
        return None
    p = Path(os.path.expanduser(path))
    if not p.is_absolute():
        return None
    try:
        return p.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return None


def _sqlite_path(uri: str) -> str | None:
    """The file of a sqlite:/// URI (sqlite:////abs is absolute, sqlite:///rel relative), else None."""
    return uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None


def excludes(cfg: SweepConfig, repo: Path = REPO) -> list[str]:
    """EXCLUDES plus whatever the sweep writes that lies inside the repo (its store, outputs, MLflow file)."""
    out = list(EXCLUDES)
    written = [cfg.storage.root, cfg.sweep.output_dir]
    if cfg.tracking.enabled and _sqlite_path(cfg.tracking.uri):
        written.append(_sqlite_path(cfg.tracking.uri) or "")
    for w in written:
        rel = inside_repo(w, repo)
        if rel and rel != "." and f"/{rel}" not in out:
            out.append(f"/{rel}")
    return out


def runtime_env(cfg: SweepConfig, repo: Path = REPO) -> dict[str, Any]:
    """The job's runtime environment: the repo as working_dir, minus stores, caches, venvs and .git.

    env_vars carries only the submitter's code version (the uploaded copy has no .git to read the commit
    from). Nothing secret goes there: env_vars show in `ray job list`, so credentials come from the nodes.
    """
    from orchestrator.sweep import CODE_VERSION_ENV, code_version

    return {"working_dir": str(repo), "excludes": excludes(cfg, repo),
            "env_vars": {CODE_VERSION_ENV: code_version(repo)}}


def entrypoint(overrides: list[str], config_dir: str | None = None) -> str:
    """`python jobs/run_sweep.py [--config-dir DIR] <overrides>`, each argument shell-quoted."""
    args = (["--config-dir", config_dir] if config_dir else []) + list(overrides)
    return " ".join(["python", ENTRYPOINT, *(shlex.quote(a) for a in args)])


def check_submittable(cfg: SweepConfig, overrides: list[str], repo: Path = REPO) -> None:
    """Refuse, before anything is sent, a sweep that cannot run as a job or would leak a credential.

    The store rule itself (absolute path or URL when cluster.address is set) is config.validate's.
    """
    from orchestrator.secrets import redact_text

    if not (repo / ENTRYPOINT).is_file():
        raise JobsError(f"{repo / ENTRYPOINT} not found: submit uploads the source checkout; run it from one "
                        "(pip install -e .)")
    address = cfg.cluster.address
    if not address or address == "local":
        raise JobsError(
            f"cluster.address={address!r}: a submitted sweep runs on the cluster, so its driver must join it; "
            "add cluster=ray (cluster.address=auto: the job's own cluster)"
        )
    if cfg.tracking.enabled:
        uri = cfg.tracking.uri
        path = _sqlite_path(uri)
        if path is None and "://" not in uri and ":" not in uri.split("/")[0]:
            path = uri  # a bare folder: MLflow's file store
        if path is not None and not os.path.isabs(os.path.expanduser(path)):
            raise JobsError(
                f"tracking.uri={uri!r} is relative: in a job it lands in Ray's per-job working folder, which is "
                "deleted afterwards; use a server (tracking=server tracking.uri=http://HOST:5000), an absolute "
                "file (tracking.uri=sqlite:////shared/mlflow.db) or tracking.enabled=false"
            )
    out = cfg.sweep.output_dir
    if not os.path.isabs(os.path.expanduser(out)) and "://" not in out:
        raise JobsError(
            f"sweep.output_dir={out!r} is relative: in a job it lands in Ray's per-job working folder, which Ray "
            "deletes once the job's workers exit (the sweep then fails while writing its report); give an absolute "
            "path (sweep.output_dir=/shared/outputs). The report, curves and cells.csv are also copied into the store"
        )
    for o in overrides:
        if redact_text(o) != o:
            raise JobsError(
                f"override {redact_text(o)!r} carries a credential, and a job's command line shows in `ray job "
                "list` and the dashboard: give it to the nodes' environment instead (MLFLOW_TRACKING_PASSWORD, "
                "AWS_*, HF_TOKEN, or a profile / the cloud's identity)"
            )


# -- the job record in the store ------------------------------------------------------------------------------------
def recorded_jobs(store) -> list[dict[str, Any]]:
    """The jobs submitted for this sweep, oldest first ([] if none)."""
    return list(store.read_json(JOBS_FILE)) if store.has(JOBS_FILE) else []


def record_job(store, job_id: str, address: str, entry: str, code_version: str | None = None) -> dict[str, Any]:
    """Append a submitted job to `{root}/{sweep}/jobs.json` (rewritten whole, atomically)."""
    job = {"job_id": job_id, "address": address, "entrypoint": entry, "code_version": code_version,
           "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    store.write_json(JOBS_FILE, [*recorded_jobs(store), job])
    return job


def latest_job(store) -> dict[str, Any]:
    jobs = recorded_jobs(store)
    if not jobs:
        raise JobsError(f"no job recorded for sweep {store.sweep_id!r} in {store.url}/{JOBS_FILE}: it was not "
                        "submitted with `orchestrator submit` (or to another storage.root)")
    return jobs[-1]


# -- progress from the store (pure) ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellProgress:
    cell_id: str
    model: str
    task: str
    prompt: str
    done: int
    total: int
    failed: int = 0  # shards whose last attempt failed (store failures/), not done since

    @property
    def missing(self) -> int:
        return self.total - self.done - self.failed


def progress(manifest: Mapping[str, Any], done: set[str], failed: Iterable[str] = ()) -> list[CellProgress]:
    """Shards done, failed and missing per cell, from manifest.json's cells (each lists its shard ids), the done
    ids and the ids whose last attempt failed."""
    bad = set(failed) - done
    return [CellProgress(c["id"], str(c["model"]), str(c["task"]), str(c["prompt"]),
                         sum(s in done for s in c["shards"]), len(c["shards"]), sum(s in bad for s in c["shards"]))
            for c in manifest.get("cells", [])]


# -- the Jobs API -----------------------------------------------------------------------------------------------
def _bounded(fn: Callable[[], T], timeout: float, what: str, address: str) -> T:
    """fn() on a daemon thread; JobsError if it has not answered within `timeout` s (the Jobs client sets none)."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=call, daemon=True, name=f"ray-jobs-{what}")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise JobsError(f"the Ray Jobs API at {address} did not answer within {timeout:g} s ({what}); check the "
                        "address and that the cluster is up")
    if "error" in box:
        e = box["error"]
        if isinstance(e, JobsError):
            raise e
        raise JobsError(f"Ray Jobs API at {address} ({what}): {type(e).__name__}: {e}") from e
    return box["value"]


def auth_headers() -> dict[str, str] | None:
    """The cluster's token as an Authorization header, read now from RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH.

    Ray reads the token once per process and keeps it, so a process that already talked to another cluster
    (a notebook, a test session) would send that one's token; passing it explicitly sends this cluster's."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and path and os.path.isfile(os.path.expanduser(path)):
        with open(os.path.expanduser(path)) as f:
            token = f.read().strip()
    return {"Authorization": f"Bearer {token}"} if token else None


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=auth_headers())
    except ConnectionError as e:
        raise JobsError(f"cannot reach the Ray Jobs API at {address}: {e}; start the cluster "
                        "(infra/ray/local_cluster.sh start) or fix the address") from e


def submit(address: str, entry: str, env: dict[str, Any], metadata: dict[str, str],
           timeout: float = 300.0, quiet: bool = True) -> str:
    """Submit the job (uploading the working_dir) and return its id without waiting for it to run.

    quiet: drop Ray's packaging lines below ERROR ("Directory '.git' is now ignored...": what `excludes` drops).
    """
    import ray.job_submission  # noqa: F401  (configures Ray's loggers, which the next line then quiets)

    if quiet:
        logging.getLogger("ray").setLevel(logging.ERROR)
    return _bounded(lambda: _client(address).submit_job(entrypoint=entry, runtime_env=env, metadata=metadata),
                    timeout, "submit", address)


def job_state(address: str, job_id: str, timeout: float = TIMEOUT_S) -> str:
    """The job's state name: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    return str(_bounded(lambda: _client(address).get_job_status(job_id).value, timeout, "status", address))


def job_logs(address: str, job_id: str, timeout: float = 60.0) -> str:
    return _bounded(lambda: _client(address).get_job_logs(job_id), timeout, "logs", address)


def stop_job(address: str, job_id: str, timeout: float = 30.0) -> bool:
    """Ask the job to stop; False if it had already ended."""
    return bool(_bounded(lambda: _client(address).stop_job(job_id), timeout, "stop", address))
