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

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from tqdm.auto import tqdm

from orchestrator.config import SweepConfig
from orchestrator.placement import Cluster, Placement, cluster_from_ray, place, policy_from_config
from orchestrator.plan import Cell, ModelSpec, Plan, Shard
from orchestrator.tasks.task import Task

log = logging.getLogger(__name__)


@dataclass
class ExecutionReport:
    """What happened: shard counts, failures, throughput."""

    total: int = 0
    skipped: int = 0  # already in the store
    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # shard id -> error
    examples: int = 0
    seconds: float = 0.0
    replicas: dict[str, int] = field(default_factory=dict)  # model -> replicas started

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

    @property
    def gpu_seconds(self) -> float:
        return self.shard_seconds * self.gpus


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


class ModelWorker:
    """One replica: holds one loaded model and runs shards on it, writing each to the store."""

    def __init__(self, model: ModelSpec, backend_cfg, threads: int | None, store: StoreSpec | None = None,
                 build: str | None = None, gpus: float = 0.0):
        from orchestrator.backends import load_backend
        from orchestrator.config import ModelFamily, ModelSize

        self.model = model
        self.gpus = float(gpus)
        self.where = where_am_i(None)
        t0 = time.perf_counter()
        try:
            obtain_model(model, build, self.where["host"])
            size = ModelSize(path=model.path, params=model.params, revision=model.revision,
                             tokenizer=model.tokenizer)
            family = ModelFamily(family=model.family, dtype=model.dtype, trust_remote_code=model.trust_remote_code)
            whole = int(self.gpus) if self.gpus >= 1 else (1 if self.gpus > 0 else 0)  # placement's k, or one shared
            self.backend = load_backend(size, family, backend_cfg, threads=threads, gpus=whole,
                                        gpu_share=self.gpus if 0 < self.gpus < 1 else None)
        except ModelUnavailable:
            raise
        except Exception as e:
            raise ModelUnavailable(f"model {model.name} ({model.path}@{model.revision}) could not be loaded on node "
                                   f"{self.where['host']}: {type(e).__name__}: {_first_line(e)}") from e
        self.load_seconds = time.perf_counter() - t0
        self.where = where_am_i(self.backend)
        self.store = None
        if store is not None:
            from orchestrator.store import SweepStore

            self.store = SweepStore(store.root, store.sweep_id, store.options)

    def ready(self) -> dict[str, str]:
        """Where this replica runs; returns once the model is loaded."""
        return dict(self.where)

    def rows(self, task: Task, cell: Cell, shard: Shard) -> list[dict]:
        """The shard's rows, each with its Provenance (node, device, replica, GPUs, load and shard seconds)."""
        from dataclasses import asdict

        from orchestrator.inference import run_shard
        from orchestrator.record import Provenance

        t0 = time.perf_counter()
        rows = run_shard(self.backend, task, cell, shard)
        seconds = time.perf_counter() - t0
        prov = asdict(Provenance(**self.where, load_seconds=self.load_seconds, shard_seconds=seconds, gpus=self.gpus))
        return [{**r, **prov} for r in rows]

    def run(self, task: Task, cell: Cell, shard: Shard) -> ShardOutcome:
        """Run the shard and write it to the store; only the outcome goes back to the driver.

        A replica made without a store (the store lives in the driver's memory) returns the rows instead.
        """
        rows = self.rows(task, cell, shard)
        seconds = float(rows[0]["shard_seconds"]) if rows else 0.0
        where = (self.where["node"], self.where["host"], self.where["worker"], seconds, self.gpus)
        if self.store is None:
            return ShardOutcome(shard.id, len(rows), "", *where, records=rows)
        return ShardOutcome(shard.id, len(rows), self.store.write_shard(shard.id, rows), *where)

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


def init_ray(cfg: SweepConfig) -> None:
    """Join the configured cluster, or start a local one with this machine's resources."""
    if ray.is_initialized():
        return
    quiet = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    kwargs: dict = {
        "ignore_reinit_error": True,
        "log_to_driver": True,
        "logging_level": logging.WARNING,
        "runtime_env": {"env_vars": quiet},
    }
    if cfg.cluster.address:
        ray.init(address=cfg.cluster.address, **kwargs)
    else:
        ray.init(num_cpus=cfg.cluster.num_cpus, include_dashboard=False, **kwargs)


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


def execute(
    plan: Plan,
    tasks: dict[str, Task],
    cfg: SweepConfig,
    done: set[str],
    store: StoreSpec | None,
    on_shard: Callable[[Shard, ShardOutcome], None] = lambda shard, outcome: None,
    on_failure: Callable[[Shard, str], None] = lambda shard, error: None,
    progress: bool = True,
) -> ExecutionReport:
    """Run every shard of `plan` not in `done` on model replicas that write to `store`.

    With `store` None the replicas return each shard's rows (ShardOutcome.records) for `on_shard` to write:
    for a store only the driver can reach (memory://). `on_shard` is called on the driver as each shard
    lands (the store write then, live tracking, progress), `on_failure` for each shard that failed; a failed
    shard is reported and the others go on.
    """
    report = ExecutionReport(total=len(plan.shards))
    queues = {m: deque(s for s in shards if s.id not in done) for m, shards in plan.shards_by_model().items()}
    report.skipped = report.total - sum(len(q) for q in queues.values())
    todo = sum(len(q) for q in queues.values())
    if todo == 0:
        return report
    init_ray(cfg)
    placed = placements([m for m in plan.models if queues[m.name]], cfg)
    models = {m.name: m for m in plan.models}
    task_refs = {name: ray.put(t) for name, t in tasks.items()}
    cells = {c.id: c for c in plan.cells}
    window = max(1, int(cfg.cluster.window))
    worker_cls = ray.remote(ModelWorker)

    replicas: dict[Any, str] = {}  # actor -> model
    loading: dict[str, int] = {}  # model -> replicas not yet ready
    busy: dict[Any, int] = {}  # ready actor -> shards in flight
    inflight: dict[Any, tuple[str, Any, Shard | None]] = {}  # ref -> ("ready" | "shard", actor, shard)
    for p in placed:  # largest model first: Ray grants its replicas first
        n = min(p.replicas, len(queues[p.model]), cfg.cluster.replicas or p.replicas)
        threads = cfg.cluster.torch_threads or max(1, int(p.num_cpus))
        for _ in range(max(1, n)):
            actor = worker_cls.options(
                num_cpus=p.num_cpus, num_gpus=p.num_gpus,
                max_restarts=cfg.cluster.max_retries, max_task_retries=cfg.cluster.max_retries,
            ).remote(models[p.model], cfg.backend, threads, store, cfg.model.build, p.num_gpus)
            replicas[actor] = p.model
            inflight[actor.ready.remote()] = ("ready", actor, None)
        loading[p.model] = max(1, n)
        report.replicas[p.model] = max(1, n)

    def feed(actor: Any) -> None:
        """Give a ready replica shards of its model up to the window; retire it when there are none left."""
        queue = queues[replicas[actor]]
        while queue and busy[actor] < window:
            shard = queue.popleft()
            cell = cells[shard.cell_id]
            inflight[actor.run.remote(task_refs[cell.task], cell, shard)] = ("shard", actor, shard)
            busy[actor] += 1
        if busy[actor] == 0:
            retire(actor)

    def retire(actor: Any) -> None:
        busy.pop(actor, None)
        name = replicas.pop(actor)
        ray.kill(actor)
        if not queues[name]:  # replicas still loading for a model with no work left: free their resources
            for ref, (kind, other, _) in list(inflight.items()):
                if kind == "ready" and replicas.get(other) == name:
                    inflight.pop(ref)
                    replicas.pop(other)
                    ray.kill(other)

    def fail(shard: Shard, error: str) -> None:
        report.failed[shard.id] = error
        log.error("shard %s (%s) failed: %s", shard.id, cells[shard.cell_id].label, error)
        on_failure(shard, error)
        bar.update(1)

    t0 = time.perf_counter()
    bar = tqdm(total=todo, desc=f"sweep {plan.sweep_id}", unit="shard", disable=not progress, dynamic_ncols=True)
    try:
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)  # at most replicas x window refs
            kind, actor, shard = inflight.pop(ready[0])
            if kind == "ready":
                name = replicas[actor]
                loading[name] -= 1
                try:
                    ray.get(ready[0])
                    busy[actor] = 0
                    feed(actor)
                except Exception as e:  # this replica could not load its model
                    error = f"{type(e).__name__}: {_cause(e)}"
                    log.error("a replica of %s failed to start: %s", name, error)
                    replicas.pop(actor, None)
                    if not any(m == name for m in replicas.values()):
                        while queues[name]:  # no replica of this model is left: its shards cannot run
                            fail(queues[name].popleft(), error)
                continue
            busy[actor] -= 1
            try:
                outcome = ray.get(ready[0])
                on_shard(shard, outcome)
                report.completed += 1
                report.examples += outcome.rows
                bar.update(1)
            except ray.exceptions.RayActorError as e:  # the replica is gone (after Ray's restarts and retries)
                fail(shard, f"{type(e).__name__}: {_cause(e)}")
                name = replicas.get(actor)
                if name is not None:
                    busy.pop(actor, None)
                    replicas.pop(actor)
                    if not any(m == name for m in replicas.values()):
                        while queues[name]:  # no replica of this model is left: its shards cannot run
                            fail(queues[name].popleft(), f"no replica of {name} is left: {_cause(e)}")
                continue
            except Exception as e:  # a failed shard is reported, the others go on
                fail(shard, f"{type(e).__name__}: {_cause(e)}")
            elapsed = time.perf_counter() - t0
            bar.set_postfix(examples_s=f"{report.examples / max(elapsed, 1e-9):.1f}", failed=len(report.failed))
            if actor in replicas:
                feed(actor)
    finally:
        bar.close()
        for actor in list(replicas):
            ray.kill(actor)
    report.seconds = time.perf_counter() - t0
    return report


def _cause(e: BaseException) -> str:
    """The user-facing cause of a Ray error: our ModelUnavailable message where there is one, else the last line."""
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
