"""Execution on Ray: model replicas, a bounded work queue, progress. The only module that imports ray.

Each model gets as many replicas (Ray actors) as orchestrator.placement says
fit at once (cluster.replicas caps it), largest model first: a share of a GPU,
k GPUs of one node, or CPUs only; a sweep that fits nowhere stops before
anything runs. A replica makes sure its model is on its own node (a zoo member
is built there if missing; hub ids resolve there), loads it once, then pulls
the model's shards from a queue, at most cluster.window in flight per replica,
so the driver waits on a bounded set whatever the number of shards.
The replica writes each finished shard to the store itself and returns only
its id, row count and checksum (ShardOutcome): results never travel through
the driver, and a driver stop loses no finished shard.
Each shard's rows say where they ran (record.Provenance: Ray node, device,
replica, GPUs held, load and shard seconds); that is output only and enters no shard id.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from tqdm.auto import tqdm

from orchestrator import timing
from orchestrator.config import SweepConfig
from orchestrator.passes import ALL
from orchestrator.placement import Cluster, Placement, cluster_from_ray, place, policy_from_config
from orchestrator.plan import Cell, ModelSpec, Plan, Shard
from orchestrator.tasks.task import Task
from orchestrator.timing import lap

log = logging.getLogger(__name__)

MAX_EXAMPLES_PER_CALL = 64  # small shards are sent to a replica several per Ray call, up to this many examples


@dataclass
class ExecutionReport:
    """What happened: shard counts, failures, throughput."""

    total: int = 0
    skipped: int = 0  # already in the store
    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # shard id -> error
    examples: int = 0
    seconds: float = 0.0
    replicas: dict[str, int] = field(default_factory=dict)  # model -> replicas that served it
    handoffs: int = 0  # replicas that went on to another model in their process instead of a new replica starting
    calls: int = 0  # Ray calls that ran shards (fewer than shards where small ones went several per call)
    worker_logs: str = ""  # Ray's log folder, when the workers' lines were kept out of the terminal

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class StoreSpec:
    """Where a replica writes its shards: the store root, the sweep and the filesystem options."""

    root: str
    sweep_id: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardOutcome:
    """What a replica returns for a finished shard; its rows are already in the store."""

    shard_id: str
    rows: int
    checksum: str  # sha256 of the stored parquet file
    node: str
    host: str
    worker: str
    shard_seconds: float
    gpus: float
    records: list[dict] | None = None  # the rows themselves, only when the driver writes (a memory:// store)
    passes: frozenset[str] = ALL  # the inference passes the rows hold
    replaces: frozenset[str] | None = None  # the passes of the stored file these rows supersede
    written: list | None = None  # [file name, size, rows checksum] as the replica wrote it (cellcache's index)

    @property
    def gpu_seconds(self) -> float:
        return self.shard_seconds * self.gpus


class ShardError(RuntimeError):
    """A shard raised inside its replica; the message names the model, the shard, its cell and the example.

    `error_class` keeps the original exception's class for the failure record (args survive pickling)."""

    def __init__(self, message: str, error_class: str = "Exception"):
        super().__init__(message, error_class)
        self.message, self.error_class = message, error_class

    def __str__(self) -> str:
        return self.message


class ModelUnavailable(RuntimeError):
    """A replica could not get or load its model on its node (the message names both)."""


def obtain_model(model: ModelSpec, build: str | None, host: str) -> None:
    """Make sure `model` is where this node can load it: build a missing zoo member here, once per node.

    A local path that does not exist (and is not a zoo member to build) fails with a message naming the model
    and the node, instead of transformers' hub error about repo ids. Hub ids resolve where the model loads.
    """
    path = Path(os.path.expanduser(model.path))
    if (path / "config.json").exists():
        return
    if build == "zoo":
        from filelock import FileLock

        from orchestrator.zoo import build as build_zoo
        from orchestrator.zoo import known_names

        if path.name not in known_names():
            raise ModelUnavailable(f"model {model.name}: {path} is not built on node {host}, and {path.name!r} is "
                                   f"not a zoo member ({', '.join(known_names())})")
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path.parent / f".{path.name}.build.lock")):  # replicas on one node build it once
            if not (path / "config.json").exists():
                log.warning("zoo: building %s on node %s (not built there yet)", path.name, host)
                build_zoo(out_dir=path.parent, names=[path.name], progress=False)
        return
    # hub ids are "name" or "org/name"; anything rooted, relative or deeper is a folder
    looks_local = model.path.startswith(("/", "~", ".")) or model.path.count("/") >= 2
    if looks_local:
        raise ModelUnavailable(
            f"model {model.name}: {model.path} does not exist on node {host}; put the model on every node (a "
            "shared filesystem, or a hub id the nodes can download), or build the zoo there (model.build=zoo)"
        )


class ProgressBoard:
    """Where replicas post how far into a shard they are, for the driver's bar (a Ray actor, no CPU).

    A shard of a large model can take minutes; counting only finished shards would leave the bar still meanwhile.
    """

    def __init__(self) -> None:
        self.fractions: dict[str, float] = {}

    def post(self, shard_id: str, examples: float) -> None:
        self.fractions[shard_id] = examples

    def take(self) -> dict[str, float]:
        out, self.fractions = self.fractions, {}
        return out


class ModelWorker:
    """One replica: holds one loaded model and runs shards on it, writing each to the store.

    When its model's work is done it can load another (`switch`): the process, its imports (torch, transformers)
    and its Ray resources are kept, which costs far less than starting a new replica.
    """

    def __init__(self, model: ModelSpec, backend_cfg, threads: int | None, store: StoreSpec | None = None,
                 build: str | None = None, gpus: float = 0.0, board: Any = None):
        self.backend_cfg, self.threads, self.build = backend_cfg, threads, build
        self.gpus = float(gpus)
        self.board = board  # a ProgressBoard, when the driver draws a bar
        self.backend: Any = None
        self._load(model)
        self.store = None
        if store is not None:
            from orchestrator.store import SweepStore

            self.store = SweepStore(store.root, store.sweep_id, store.options)

    def _load(self, model: ModelSpec) -> None:
        from orchestrator.backends import load_backend
        from orchestrator.config import ModelFamily, ModelSize

        self.model = model
        self.where = where_am_i(None)
        t0 = time.perf_counter()
        try:
            obtain_model(model, self.build, self.where["host"])
            size = ModelSize(path=model.path, params=model.params, revision=model.revision,
                             tokenizer=model.tokenizer)
            family = ModelFamily(family=model.family, dtype=model.dtype, trust_remote_code=model.trust_remote_code)
            whole = int(self.gpus) if self.gpus >= 1 else (1 if self.gpus > 0 else 0)  # placement's k, or one shared
            self.backend = load_backend(size, family, self.backend_cfg, threads=self.threads, gpus=whole,
                                        gpu_share=self.gpus if 0 < self.gpus < 1 else None)
        except ModelUnavailable:
            raise
        except Exception as e:
            raise ModelUnavailable(f"model {model.name} ({model.path}@{model.revision}) could not be loaded on node "
                                   f"{self.where['host']}: {type(e).__name__}: {_first_line(e)}") from e
        self.load_seconds = time.perf_counter() - t0
        self.where = where_am_i(self.backend)

    def switch(self, model: ModelSpec) -> dict[str, str]:
        """Drop the model held and load `model` in its place; returns as `ready` does, once it is loaded."""
        if model.name != self.model.name:
            import gc

            self.backend = None
            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass
            self._load(model)
        return self.ready()

    def ready(self) -> dict[str, str]:
        """Where this replica runs and the model it holds; returns once the model is loaded (also after Ray
        restarted the replica, which then holds the model it was created with)."""
        return {**self.where, "model": self.model.name}

    def rows(self, task: Task, cell: Cell, shard: Shard, batch_size: int | None = None,
             passes: frozenset[str] = ALL) -> list[dict]:
        """The shard's rows, each with its Provenance (node, device, replica, GPUs, load and shard seconds).

        `batch_size` overrides backend.batch_size for this shard (halved after an out-of-memory error);
        `passes` are the inference passes to run (`orchestrator.passes`).
        """
        from dataclasses import asdict

        from orchestrator import faults
        from orchestrator.inference import run_shard
        from orchestrator.record import Provenance

        if cell.model.name != self.model.name:  # the driver checks `ready` first; this must never write a row
            raise ShardError(f"shard {shard.id} is for model {cell.model.name} but this replica holds "
                             f"{self.model.name}", "ReplicaModelMismatch")
        configured = getattr(self.backend, "batch_size", None)
        if batch_size and configured is not None:
            self.backend.batch_size = batch_size
        try:
            faults.before_inference(shard.id, getattr(self.backend, "batch_size", 1) or 1)
            t0 = time.perf_counter()
            split: dict[str, float] = {}
            try:
                rows = run_shard(self.backend, task, cell, shard, passes, split, self._poster(shard))
            except Exception as e:
                if is_oom(e):
                    raise  # the driver retries it with half the batch
                raise ShardError(self._blame(task, cell, shard, e), type(e).__name__) from e
            seconds = time.perf_counter() - t0
        finally:
            if configured is not None:
                self.backend.batch_size = configured
        faults.after_inference(shard.id)
        prov = asdict(Provenance(**self.where, load_seconds=self.load_seconds, shard_seconds=seconds, gpus=self.gpus,
                                 **split))
        return [{**r, **prov} for r in rows]

    def _poster(self, shard: Shard) -> Callable[[float], None] | None:
        """Posts the shard's examples done (its done fraction x its size) to the board, at most twice a second
        (fire and forget)."""
        if self.board is None:
            return None
        last = [0.0]

        def post(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.5:
                last[0] = now
                self.board.post.remote(shard.id, fraction * shard.size)

        return post

    def _blame(self, task: Task, cell: Cell, shard: Shard, error: Exception) -> str:
        """The failed shard's model, id, cell and (found by running its examples one at a time, only now that it
        failed) the first example that fails alone, so a bad example is named rather than guessed at."""
        from orchestrator.inference import run_shard

        where = f"model {self.model.name}, shard {shard.id} ({cell.label}, examples [{shard.start}, {shard.stop}))"
        for i in range(shard.start, shard.stop):
            try:
                run_shard(self.backend, task, cell, Shard(shard.id, shard.cell_id, i, i + 1))
            except Exception as e:
                idx = task.examples[i].idx
                return f"{where}, example {idx} (position {i}): {type(e).__name__}: {_first_line(e)}"
        return f"{where}: {type(error).__name__}: {_first_line(error)} (no single example fails alone)"

    def run(self, task: Task, cell: Cell, shard: Shard, batch_size: int | None = None,
            passes: frozenset[str] = ALL, replaces: frozenset[str] | None = None) -> ShardOutcome:
        """Run the shard and write it to the store; only the outcome goes back to the driver.

        `replaces`: the passes of the shard's stored file this one supersedes (removed once this one is written).
        A replica made without a store (the store lives in the driver's memory) returns the rows instead.
        """
        rows = self.rows(task, cell, shard, batch_size, passes)
        seconds = float(rows[0]["shard_seconds"]) if rows else 0.0
        where = (self.where["node"], self.where["host"], self.where["worker"], seconds, self.gpus)
        if self.store is None:
            return ShardOutcome(shard.id, len(rows), "", *where, records=rows, passes=passes, replaces=replaces)
        checksum = self.store.write_shard(shard.id, rows, passes, replaces)
        return ShardOutcome(shard.id, len(rows), checksum, *where, passes=passes, replaces=replaces,
                            written=self.store.written.pop(shard.id, None))

    def run_many(self, task: Task, jobs: list[tuple]) -> list[ShardOutcome | Exception]:
        """`run` for each job (the arguments after `task`), in order, in one Ray call: for many small shards the
        per-call cost of Ray would outweigh the shard. A shard that raises gives its exception in its place and
        the others still run; each finished shard is in the store as soon as it is done."""
        out: list[ShardOutcome | Exception] = []
        for job in jobs:
            try:
                out.append(self.run(task, *job))
            except Exception as e:  # noqa: BLE001 - handed back to the driver, which retries or fails that shard
                out.append(e)
        return out

    def node(self) -> str:
        return ray.util.get_node_ip_address()


def where_am_i(backend: object) -> dict[str, str]:
    """Provenance's node, host, device, device_name and worker for this process and `backend`.

    Outside Ray (a worker built in-process) node is "" and worker names the process.
    """
    import socket

    import torch

    node, ip, worker = "", "", f"pid:{os.getpid()}"
    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        node = ctx.get_node_id() or ""
        worker = ctx.get_actor_id() or worker
        ip = ray.util.get_node_ip_address()
    host = socket.gethostname() + (f" ({ip})" if ip else "")
    dev = getattr(backend, "device", None)  # the transformers backend's; vLLM's runs on the GPU Ray gave it
    device = torch.device(dev) if dev is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda":
        return {"node": node, "host": host, "device": str(device), "device_name": "", "worker": worker}
    index = device.index if device.index is not None else torch.cuda.current_device()
    return {"node": node, "host": host, "device": f"cuda:{index}", "device_name": torch.cuda.get_device_name(index),
            "worker": worker}


def init_ray(cfg: SweepConfig, progress: bool = False) -> None:
    """Join the configured cluster, or start a local one with this machine's resources; then make sure a worker
    process starts at all (a Ray that cannot start workers would otherwise wait forever, silently).

    With a progress bar on a terminal, the workers' own log lines stay out of it (they are in Ray's session logs,
    whose folder the end of a run names); in a job or with -q they go to the driver's output as usual.
    """
    if ray.is_initialized():
        return
    quiet = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    kwargs: dict = {
        "ignore_reinit_error": True,
        "log_to_driver": not _bar_on_terminal(progress),
        "logging_level": logging.WARNING,
        "runtime_env": {"env_vars": quiet},
    }
    if cfg.cluster.address:
        ray.init(address=cfg.cluster.address, **kwargs)
    else:
        ray.init(num_cpus=cfg.cluster.num_cpus, include_dashboard=False, **kwargs)
    check_workers_start(cfg.cluster.start_timeout)


def _bar_on_terminal(progress: bool) -> bool:
    """A progress bar drawn on a terminal: the workers' log lines would cut through it."""
    return progress and sys.stderr.isatty()


def _alive() -> bool:
    return True


class ClusterUnusable(RuntimeError):
    """Ray is up but cannot run anything (no worker process starts): the run stops, saying where to look."""


def check_workers_start(timeout: float) -> None:
    """ClusterUnusable naming the cause and Ray's logs if no worker process answers within `timeout` seconds."""
    ref = ray.remote(num_cpus=0)(_alive).remote()
    ready, _ = ray.wait([ref], timeout=timeout)
    if not ready:
        ray.cancel(ref, force=True)
        raise ClusterUnusable(
            f"Ray could not start a worker process within {timeout:g} s (cluster.start_timeout), so no model could "
            f"run; see Ray's logs in {ray_logs()} (raylet.err, worker-*.err): a broken Python environment on the "
            "nodes, a runtime_env that fails to install, or a full /tmp are the usual causes"
        )


def ray_logs() -> str:
    """The folder of this Ray session's logs (workers' output when it is kept out of the terminal)."""
    try:
        return os.path.join(ray._private.worker._global_node.get_session_dir_path(), "logs")
    except Exception:  # a client connection or an older Ray: the usual place
        return "/tmp/ray/session_latest/logs"


def describe_cluster(cfg: SweepConfig) -> Cluster:
    """The live cluster: CPUs, GPUs and RAM per node from ray.nodes(); GPU memory (which Ray does not report)
    from cluster.gpu_memory_gb when set, else measured with nvidia-smi on each GPU node."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probed = {} if cfg.cluster.gpu_memory_gb else _probe_gpu_memory(nodes)
    return cluster_from_ray(nodes, cfg.cluster.gpu_memory_gb, probed)


def _gpu_memory_here() -> int | None:
    """Bytes of the smallest GPU on this node, from nvidia-smi (None where there is none)."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    mib = [int(v) for v in out.split() if v.strip().isdigit()]
    return min(mib) * 2**20 if mib else None


def _probe_gpu_memory(nodes: list[dict]) -> dict[str, int]:
    """Node id -> bytes per GPU, by a zero-CPU task pinned to each GPU node; {} where that fails."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpu_nodes = [n["NodeID"] for n in nodes if (n.get("Resources") or {}).get("GPU")]
    if not gpu_nodes:
        return {}
    probe = ray.remote(num_cpus=0)(_gpu_memory_here)
    refs = {nid: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False)).remote()
            for nid in gpu_nodes}
    try:
        values = ray.get(list(refs.values()), timeout=120)
    except Exception as e:  # placement then asks for cluster.gpu_memory_gb
        log.warning("could not measure GPU memory on the nodes (%s); set cluster.gpu_memory_gb", _first_line(e))
        return {}
    return {nid: v for nid, v in zip(refs, values, strict=True) if v}


def placements(models: list[ModelSpec], cfg: SweepConfig) -> list[Placement]:
    """Each model's Ray request on the live cluster, largest first (orchestrator.placement); ConfigError if any
    model fits nowhere, before anything runs."""
    placed = place(models, describe_cluster(cfg), policy_from_config(cfg))
    for p in placed:
        log.info("placement: %s needs %.1f GB (%s) -> %g CPUs, %g GPUs (%d per replica), up to %d at once",
                 p.model, p.need_gb, p.dtype, p.num_cpus, p.num_gpus, p.gpus_per_replica, p.replicas)
    return placed


@dataclass
class _Replica:
    actor: Any
    model: str
    state: str = "loading"  # loading -> ready; probing after it lost a shard (restarting or gone?)
    busy: int = 0  # shards in flight
    host: str = ""
    shape: tuple[float, float] = (0.0, 0.0)  # the CPUs and GPUs Ray gave it
    reserved: int = 0  # the memory it reserved from Ray (CPU replicas): a model it switches to must fit in it
    since: float | None = None  # monotonic time its current model became ready (for timing.serving)
    fresh: bool = True  # a new process still starting (never ready, not handed a model): the one a handoff replaces
    held: set[str] = field(default_factory=set)  # models it held before its current one: never loaded again by it


@dataclass(frozen=True)
class Failure:
    """A shard's last failed attempt, as the store records it."""

    error: str  # the exception class
    message: str
    attempts: int
    model: str
    host: str  # the node it failed on ("" when unknown, e.g. the replica died)

    def __str__(self) -> str:
        return f"{self.error}: {self.message}"


def is_oom(e: BaseException) -> bool:
    """An out-of-memory error (torch's, or its text through a Ray error): retried with a halved batch."""
    text = f"{type(e).__name__}: {e}"
    return "OutOfMemoryError" in text or "CUDA out of memory" in text or "out of memory" in text.lower()


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2, ...) of a shard that raised: 2, 4, 8 ... capped at 30."""
    return float(min(2 ** attempt, 30))


def execute(
    plan: Plan,
    tasks: dict[str, Task],
    cfg: SweepConfig,
    done: set[str],
    store: StoreSpec | None,
    on_shard: Callable[[Shard, ShardOutcome], None] = lambda shard, outcome: None,
    on_failure: Callable[[Shard, Failure], None] = lambda shard, failure: None,
    progress: bool = True,
    on_tick: Callable[[], None] = lambda: None,
    tick: float = 5.0,
    passes: frozenset[str] = ALL,
    stored: dict[str, frozenset[str]] | None = None,
) -> ExecutionReport:
    """Run every shard of `plan` not in `done` on model replicas that write to `store`, healing what fails.

    With `store` None the replicas return each shard's rows (ShardOutcome.records) for `on_shard` to write:
    for a store only the driver can reach (memory://). `on_shard` is called on the driver as each shard
    lands; `on_failure` once for each shard that failed for good; `on_tick` at least every `tick` seconds
    (live tracking). Each shard runs `passes` (`orchestrator.passes`); a shard in `stored` (its file holds
    fewer passes than asked) runs those passes too, and its new file replaces the old.

    Healing: a replica that dies (process killed, node lost) is restarted by Ray (cluster.max_retries
    restarts) once Ray has noticed; meanwhile its shards go back to the queue for any live replica, and it
    is probed before it gets more. A replica that is gone for good is replaced while the model has work and
    its start budget lasts. A shard that runs out of memory is retried with half the batch, down to 1; any
    other error is retried after a backoff (2, 4, 8 ... s) up to cluster.max_retries times, then that shard
    fails and the others go on.
    """
    report = ExecutionReport(total=len(plan.shards))
    stored = stored or {}
    queues = {m: deque(s for s in shards if s.id not in done) for m, shards in plan.shards_by_model().items()}
    report.skipped = report.total - sum(len(q) for q in queues.values())
    todo = sum(len(q) for q in queues.values())
    if todo == 0:
        return report
    init_ray(cfg, progress)
    lap("startup")  # Ray started (or joined) and a worker process answered
    report.worker_logs = ray_logs() if _bar_on_terminal(progress) else ""
    placed = {p.model: p for p in placements([m for m in plan.models if queues[m.name]], cfg)}
    models = {m.name: m for m in plan.models}
    task_refs = {name: ray.put(t) for name, t in tasks.items()}
    cells = {c.id: c for c in plan.cells}
    window = max(1, int(cfg.cluster.window))
    max_attempts = cfg.cluster.max_retries + 1
    worker_cls = ray.remote(ModelWorker)
    reuse = bool(getattr(cfg.cluster, "reuse_replicas", True)) and cfg.backend.name != "vllm"
    board = ray.remote(ProgressBoard).options(num_cpus=0).remote() if progress else None

    reps: dict[Any, _Replica] = {}  # actor -> replica
    inflight: dict[Any, tuple[str, Any, Shard | None]] = {}  # ref -> ("ready" | "probe" | "shard", actor, shard)
    delayed: list[tuple[float, int, str, Shard]] = []  # (due, seq, model, shard): retries after a backoff
    attempts: dict[str, int] = {}  # shard id -> attempts that raised
    errors: dict[str, Failure] = {}  # shard id -> its last own error
    losses: dict[str, int] = {}  # shard id -> times its replica died under it
    reprobe: list[tuple[float, int, Any]] = []  # (due, seq, actor): replicas Ray is restarting, asked again later
    batch: dict[str, int] = {}  # shard id -> batch size after out-of-memory errors
    starts: dict[str, int] = {}
    budget: dict[str, int] = {}  # replicas a model may start in all (its first ones + cluster.max_retries)
    last_error: dict[str, Failure] = {}
    seq = 0

    def start_replica(name: str) -> None:
        p = placed[name]
        threads = cfg.cluster.torch_threads or max(1, int(p.num_cpus))
        options: dict[str, Any] = {"num_cpus": p.num_cpus, "num_gpus": p.num_gpus,
                                   "max_restarts": cfg.cluster.max_retries, "max_task_retries": 0}
        if p.num_gpus == 0:  # CPU replicas of several models must not overfill a node's RAM; one that may go on
            # to another model (reuse) reserves for the largest of its shape, so any can follow any
            options["memory"] = max([q.need_bytes for q in placed.values() if reuse and q.num_gpus == 0
                                     and q.num_cpus == p.num_cpus] + [p.need_bytes])
        actor = worker_cls.options(**options).remote(models[name], cfg.backend, threads, store, cfg.model.build,
                                                     p.num_gpus, board)
        reps[actor] = _Replica(actor, name, shape=(p.num_cpus, p.num_gpus), reserved=options.get("memory", 0))
        inflight[actor.ready.remote()] = ("ready", actor, None)
        starts[name] = starts.get(name, 0) + 1

    for p in placed.values():  # largest model first: Ray grants its replicas first
        # another replica pays a model load (and a worker start): only worth it with enough shards to share
        worth = -(-len(queues[p.model]) // max(1, cfg.cluster.min_shards_per_replica))
        n = max(1, min(p.replicas, worth, cfg.cluster.replicas or p.replicas))
        budget[p.model] = n + cfg.cluster.max_retries
        report.replicas[p.model] = n
        for _ in range(n):
            start_replica(p.model)

    def waiting(name: str) -> int:
        return len(queues[name]) + sum(1 for d in delayed if d[2] == name)

    def alive(name: str) -> bool:
        return any(r.model == name for r in reps.values())

    def served(rep: _Replica) -> None:
        """Book the time `rep` held its current model ready (benchmarks: overhead while a model is loaded)."""
        if rep.since is not None:
            timing.serving(rep.model, time.monotonic() - rep.since)
            rep.since = None

    def remove(rep: _Replica) -> None:
        served(rep)
        reps.pop(rep.actor, None)
        ray.kill(rep.actor)  # also one that is only unreachable: it must not keep holding its GPU or CPUs

    def feed(rep: _Replica) -> None:
        """Give a ready replica shards of its model up to the window; retire it when its model has no work."""
        queue = queues[rep.model]
        while queue and rep.busy < window:
            group = [queue.popleft()]
            task_name = cells[group[0].cell_id].task
            for _ in range(per_call(rep.model) - 1):  # small shards: several per Ray call, of one task
                if not queue or cells[queue[0].cell_id].task != task_name:
                    break
                group.append(queue.popleft())
            jobs = []
            for shard in group:
                old = stored.get(shard.id)
                jobs.append((cells[shard.cell_id], shard, batch.get(shard.id), passes | old if old else passes, old))
            if len(group) == 1:
                inflight[rep.actor.run.remote(task_refs[task_name], *jobs[0])] = ("shard", rep.actor, group[0])
            else:
                inflight[rep.actor.run_many.remote(task_refs[task_name], jobs)] = ("shards", rep.actor, tuple(group))
            rep.busy += 1
            report.calls += 1
        if rep.busy == 0 and waiting(rep.model) == 0:
            done_with = rep.model
            # its model's new replicas still starting are not needed (one switching to it goes on once ready)
            for ref, (kind, actor, _) in list(inflight.items()):
                other = reps.get(actor)
                if kind == "ready" and other is not None and other.model == done_with and other.fresh:
                    inflight.pop(ref)
                    remove(other)
            successor = next_model(rep)
            if successor is None:
                remove(rep)
            else:
                handoff(rep, successor)

    def next_model(rep: _Replica) -> str | None:
        """The model this idle replica should load next, in its own process, or None (it retires).

        Only a model of the same shape (CPUs, GPUs; on CPU, its memory within what the replica reserved), with
        work waiting, and either a replica of its own still starting (this one takes its place) or enough work
        for one more replica (cluster.min_shards_per_replica shards each, at most placement's replicas)."""
        if not reuse:
            return None
        best, best_key = None, None
        for name in queues:
            p = placed.get(name)
            if name == rep.model or name in rep.held or p is None or waiting(name) == 0 \
                    or (p.num_cpus, p.num_gpus) != rep.shape:
                continue
            if p.num_gpus == 0 and p.need_bytes > rep.reserved:
                continue
            mine = [r for r in reps.values() if r.model == name]
            starting = any(r.state == "loading" and r.fresh for r in mine)
            wanted = len(mine) < min(p.replicas, -(-waiting(name) // max(1, cfg.cluster.min_shards_per_replica)))
            if not (starting or wanted):
                continue
            key = (starting, waiting(name))  # take a starting replica's place first, then the most work
            if best_key is None or key > best_key:
                best, best_key = name, key
        return best

    def handoff(rep: _Replica, name: str) -> None:
        """`rep` loads `name` in its process; a replica of `name` still starting is no longer needed."""
        starting = [r for r in reps.values() if r.model == name and r.state == "loading" and r.fresh]
        if starting:
            other = starting[-1]  # the last one asked for: the likeliest to be still waiting for resources
            for ref, (_, actor, _) in list(inflight.items()):
                if actor is other.actor:
                    inflight.pop(ref)
            remove(other)
        else:
            report.replicas[name] = report.replicas.get(name, 0) + 1
        log.info("a replica of %s goes on to %s%s", rep.model, name, " (in place of one still starting)"
                 if starting else "")
        served(rep)
        rep.held.add(rep.model)
        rep.model, rep.state, rep.busy, rep.fresh = name, "loading", 0, False
        inflight[rep.actor.switch.remote(models[name])] = ("ready", rep.actor, None)
        report.handoffs += 1

    def per_call(name: str) -> int:
        """Shards to send in one Ray call: 1, unless the model's queue holds more than 4 calls per window slot of
        each replica, then up to MAX_EXAMPLES_PER_CALL examples' worth (so a sweep of many tiny shards does not
        pay Ray's per-call cost per shard, and the queue's tail still spreads one shard at a time)."""
        queue = queues[name]
        replicas = max(1, sum(1 for r in reps.values() if r.model == name))
        k = len(queue) // (4 * replicas * window)
        return max(1, min(k, MAX_EXAMPLES_PER_CALL // max(1, queue[0].size))) if queue else 1

    def feed_model(name: str) -> None:
        for rep in [r for r in reps.values() if r.model == name and r.state == "ready"]:
            feed(rep)
        if not alive(name):
            replace(name)

    def replace(name: str) -> None:
        """A model with work and no replica left: start another within its budget, else fail its shards."""
        if waiting(name) == 0 or alive(name):
            return
        if starts.get(name, 0) < budget[name]:
            log.warning("model %s has no replica left; starting another (%d of %d)", name, starts[name] + 1,
                        budget[name])
            start_replica(name)
            return
        cause = last_error.get(name)
        while queues[name]:
            shard = queues[name].popleft()
            fail(shard, Failure(cause.error if cause else "NoReplica", f"no replica of {name} could run it"
                                + (f": {cause.message}" if cause else ""), attempts.get(shard.id, 0), name, ""))
        for d in [d for d in delayed if d[2] == name]:
            delayed.remove(d)
            fail(d[3], Failure(cause.error if cause else "NoReplica", f"no replica of {name} could run it",
                               attempts.get(d[3].id, 0), name, ""))

    def fail(shard: Shard, failure: Failure) -> None:
        report.failed[shard.id] = str(failure)
        log.error("shard %s (%s) failed after %d attempt(s): %s", shard.id, cells[shard.cell_id].label,
                  failure.attempts, failure)
        on_failure(shard, failure)
        meter.over(shard)

    def retry_or_fail(shard: Shard, name: str, failure: Failure, oom: bool, lost: bool) -> None:
        nonlocal seq
        last_error[name] = failure
        if oom:
            size = batch.get(shard.id, cfg.backend.batch_size)
            if size > 1:
                batch[shard.id] = size // 2
                log.warning("shard %s ran out of memory at batch %d; retrying at %d", shard.id, size, size // 2)
                queues[name].appendleft(shard)
                return
        if lost:  # the replica died, not (we assume) because of the shard: any live replica may take it now
            losses[shard.id] = losses.get(shard.id, 0) + 1
            if losses[shard.id] <= max_attempts + 2:  # a shard that kills every replica it meets must end too
                log.warning("shard %s lost its replica (%s); queued again (lost %d time(s))", shard.id, failure,
                            losses[shard.id])
                queues[name].appendleft(shard)
                return
            own = errors.get(shard.id)
            fail(shard, own or Failure(failure.error, f"its replica died {losses[shard.id]} times: {failure.message}",
                                       attempts.get(shard.id, 0) + losses[shard.id], name, failure.host))
            return
        attempts[shard.id] = attempts.get(shard.id, 0) + 1
        failure = Failure(failure.error, failure.message, attempts[shard.id], name, failure.host)
        errors[shard.id] = failure
        if attempts[shard.id] >= max_attempts:
            fail(shard, failure)
            return
        wait = backoff(attempts[shard.id])
        log.warning("shard %s failed (%s); retrying in %.0f s (attempt %d of %d)", shard.id, failure, wait,
                    attempts[shard.id] + 1, max_attempts)
        seq += 1
        heapq.heappush(delayed, (time.monotonic() + wait, seq, name, shard))

    t0 = time.perf_counter()
    last_tick = time.monotonic()
    # counted in examples (a shard is up to sweep.shard_size of them), so the bar moves with the work
    bar = tqdm(total=sum(s.size for q in queues.values() for s in q), desc=f"sweep {plan.sweep_id}", unit="ex",
               disable=not progress, dynamic_ncols=True)
    meter = _Meter(bar, board)
    bar.set_postfix_str(f"loading {len(reps)} replica(s) of {len(placed)} model(s)")
    try:
        while inflight or delayed or reprobe:
            meter.poll()
            now = time.monotonic()
            while delayed and delayed[0][0] <= now:
                _, _, name, shard = heapq.heappop(delayed)
                queues[name].append(shard)
                feed_model(name)
            while reprobe and reprobe[0][0] <= now:
                _, _, actor = heapq.heappop(reprobe)
                if actor in reps:
                    inflight[actor.ready.remote()] = ("probe", actor, None)
            if now - last_tick >= tick:
                on_tick()
                last_tick = now
            due = min([d[0] for d in delayed[:1]] + [r[0] for r in reprobe[:1]], default=now + tick)
            if not inflight:
                time.sleep(max(0.0, min(due - now, tick)))
                continue
            timeout = max(0.0, min(tick, due - now, meter.every))
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=timeout)  # at most replicas x window refs
            if not ready:
                continue
            kind, actor, shard = inflight.pop(ready[0])
            rep = reps.get(actor)
            if kind in ("ready", "probe"):
                if rep is None:
                    continue  # retired meanwhile
                try:
                    where = ray.get(ready[0])
                    if where.get("model", rep.model) != rep.model:  # Ray restarted it: it holds its first model
                        inflight[actor.switch.remote(models[rep.model])] = ("ready", actor, None)
                        rep.state = "loading"
                        continue
                    rep.host = where.get("host", "")
                    rep.state, rep.fresh = "ready", False
                    if rep.since is None:
                        rep.since = time.monotonic()
                    feed(rep)
                    bar.set_postfix_str(f"{sum(r.state == 'ready' for r in reps.values())}/{len(reps)} replicas ready")
                except ray.exceptions.ActorUnavailableError:  # Ray is restarting it (or it is unreachable a while)
                    seq += 1
                    heapq.heappush(reprobe, (time.monotonic() + 1.0, seq, actor))
                except Exception as e:  # could not load its model, or gone for good after Ray's restarts
                    error = _cause(e)
                    log.error("a replica of %s %s: %s", rep.model, "failed to start" if kind == "ready" else
                              "is gone", error)
                    last_error[rep.model] = Failure(_error_class(e), error, 0, rep.model, rep.host)
                    remove(rep)
                    replace(rep.model)
                continue
            assert shard is not None
            group = shard if isinstance(shard, tuple) else (shard,)  # a "shards" call carries several
            name = cells[group[0].cell_id].model.name
            host = rep.host if rep else ""
            if rep is not None:
                rep.busy = max(0, rep.busy - 1)
            try:
                got = ray.get(ready[0])
                outcomes = list(got) if kind == "shards" else [got]
            except ray.exceptions.RayActorError as e:  # the replica died or is unreachable mid-shard
                for s in group:
                    retry_or_fail(s, name, Failure(_error_class(e), _cause(e), 0, name, host), oom=is_oom(e), lost=True)
                if rep is not None and rep.state == "ready":  # restarting (Ray noticed) or gone: ask it
                    rep.state = "probing"
                    inflight[actor.ready.remote()] = ("probe", actor, None)
                feed_model(name)
                outcomes = []
            except Exception as e:  # the shard raised: retried after a backoff, or with half the batch
                for s in group:
                    retry_or_fail(s, name, Failure(_error_class(e), _cause(e), 0, name, host), oom=is_oom(e),
                                  lost=False)
                outcomes = []
            for s, outcome in zip(group, outcomes, strict=False):  # none when the call failed as a whole
                try:
                    if isinstance(outcome, Exception):
                        raise outcome
                    on_shard(s, outcome)
                    report.completed += 1
                    report.examples += outcome.rows
                    meter.over(s)
                except Exception as e:  # this shard raised (in its replica, or landing): as above
                    retry_or_fail(s, name, Failure(_error_class(e), _cause(e), 0, name, host), oom=is_oom(e),
                                  lost=False)
            ready_now = sum(r.state == "ready" for r in reps.values())
            bar.set_postfix(shards=f"{report.completed}/{todo}", replicas=ready_now, failed=len(report.failed))
            if rep is not None and rep.actor in reps and rep.state == "ready":
                feed(rep)
    finally:
        bar.close()
        for rep in list(reps.values()):
            served(rep)
            ray.kill(rep.actor)
        if board is not None:
            ray.kill(board)
    report.seconds = time.perf_counter() - t0
    return report


class _Meter:
    """The bar in examples: those of finished (or failed) shards plus the posted share of those in flight."""

    def __init__(self, bar: Any, board: Any, every: float = 1.0):
        self.bar, self.board, self.every = bar, board, every if board is not None else float("inf")
        self.finished = 0
        self.partial: dict[str, float] = {}  # shard id -> examples done so far, as its replica last posted
        self.over_ids: set[str] = set()  # a post read after its shard finished must not count again
        self.last = 0.0

    def over(self, shard: Shard) -> None:
        self.finished += shard.size
        self.over_ids.add(shard.id)
        self.partial.pop(shard.id, None)
        self._draw()

    def poll(self) -> None:
        """Read the board at most every `every` seconds (one small Ray call)."""
        now = time.monotonic()
        if self.board is None or now - self.last < self.every:
            return
        self.last = now
        try:
            posted = ray.get(self.board.take.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - a bar must never stop a sweep
            return
        self.partial.update({k: v for k, v in posted.items() if k not in self.over_ids})
        self._draw()

    def _draw(self) -> None:
        self.bar.n = min(self.bar.total, int(self.finished + sum(self.partial.values())))
        self.bar.refresh()


def _error_class(e: BaseException) -> str:
    """The class of the error that happened in the worker (a RayTaskError wraps it; a ShardError names it)."""
    if isinstance(e, ShardError):  # returned by run_many rather than raised through Ray
        return e.error_class
    cause = getattr(e, "cause", None)
    if isinstance(cause, ShardError):
        return cause.error_class
    if isinstance(cause, BaseException):
        return type(cause).__name__
    return type(e).__name__


def _cause(e: BaseException) -> str:
    """The user-facing cause of a Ray error: our ModelUnavailable message where there is one, else the last line."""
    cause = e if isinstance(e, ShardError) else getattr(e, "cause", None)
    if isinstance(cause, ShardError):
        return cause.message
    text = str(e)
    marker = "ModelUnavailable: "
    if marker in text:
        return text[text.rindex(marker) + len(marker):].strip().splitlines()[0]
    return _first_line(e)  # type: ignore[arg-type]


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    # RayTaskError puts the traceback first; the cause is on its last line
    return text[-1] if text else type(e).__name__


def shutdown() -> None:
    if ray.is_initialized() and not os.environ.get("ORCHESTRATOR_KEEP_RAY"):
        ray.shutdown()
