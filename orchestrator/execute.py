"""Execution on Ray: model-affine workers, scheduling and progress. The only module that imports ray.

One actor per model size loads its weights once and runs every shard of that
model, across tasks and prompt styles, in order. Each actor asks Ray for what
orchestrator.placement decided from the model's memory need and the live
cluster (largest model first; a share of a GPU, k GPUs of one node, or CPUs
only), so a 2-core machine runs two small models at a time, a GPU cluster
packs small models onto shared GPUs, and a sweep that fits nowhere stops
before anything runs.
Each shard's rows say where they ran (record.Provenance: Ray node, device,
actor, load and shard seconds); that is output only and enters no shard id.
The driver writes each finished shard to the store the moment it arrives:
the store, not Ray's object store, holds results, so a crash loses at most the
shards in flight.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ray
from tqdm.auto import tqdm

from orchestrator.config import SweepConfig
from orchestrator.placement import Cluster, Placement, cluster_from_ray, place, policy_from_config, refuse_multi_gpu
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

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


class ModelWorker:
    """Holds one loaded model and runs shards on it."""

    def __init__(self, model: ModelSpec, backend_cfg, threads: int | None):
        from orchestrator.backends import load_backend
        from orchestrator.config import ModelFamily, ModelSize

        self.model = model
        t0 = time.perf_counter()
        size = ModelSize(path=model.path, params=model.params, revision=model.revision, tokenizer=model.tokenizer)
        family = ModelFamily(family=model.family, dtype=model.dtype, trust_remote_code=model.trust_remote_code)
        self.backend = load_backend(size, family, backend_cfg, threads=threads)
        self.load_seconds = time.perf_counter() - t0
        self.where = where_am_i(self.backend)

    def run(self, task: Task, cell: Cell, shard: Shard) -> tuple[str, list[dict], float]:
        """The shard's rows, each with its Provenance (node, device, replica, load and shard seconds)."""
        from dataclasses import asdict

        from orchestrator.inference import run_shard
        from orchestrator.record import Provenance

        t0 = time.perf_counter()
        rows = run_shard(self.backend, task, cell, shard)
        seconds = time.perf_counter() - t0
        prov = asdict(Provenance(**self.where, load_seconds=self.load_seconds, shard_seconds=seconds))
        return shard.id, [{**r, **prov} for r in rows], seconds

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
    refuse_multi_gpu(placed)
    for p in placed:
        log.info("placement: %s needs %.1f GB (%s) -> %g CPUs, %g GPUs (%d per replica), up to %d at once",
                 p.model, p.need_gb, p.dtype, p.num_cpus, p.num_gpus, p.gpus_per_replica, p.replicas)
    return placed


def execute(
    plan: Plan,
    tasks: dict[str, Task],
    cfg: SweepConfig,
    done: set[str],
    on_shard: Callable[[Shard, list[dict]], None],
    progress: bool = True,
) -> ExecutionReport:
    """Run every shard of `plan` not in `done`; call `on_shard` (the store write) as each finishes."""
    report = ExecutionReport(total=len(plan.shards))
    pending = {m: [s for s in shards if s.id not in done] for m, shards in plan.shards_by_model().items()}
    report.skipped = report.total - sum(len(v) for v in pending.values())
    todo = sum(len(v) for v in pending.values())
    if todo == 0:
        return report
    init_ray(cfg)
    placed = {p.model: p for p in placements([m for m in plan.models if pending[m.name]], cfg)}
    worker_cls = ray.remote(ModelWorker)
    task_refs = {name: ray.put(t) for name, t in tasks.items()}
    models = {m.name: m for m in plan.models}
    futures: dict = {}
    actors: dict[str, object] = {}
    left: dict[str, int] = {}
    for name, p in placed.items():  # largest model first
        shards = pending[name]
        threads = cfg.cluster.torch_threads or max(1, int(p.num_cpus))
        actor = worker_cls.options(
            num_cpus=p.num_cpus,
            num_gpus=p.num_gpus,
            max_restarts=cfg.cluster.max_retries,
            max_task_retries=cfg.cluster.max_retries,
        ).remote(models[name], cfg.backend, threads)
        actors[name] = actor
        left[name] = len(shards)
        for s in shards:
            cell = plan.cell(s.cell_id)
            futures[actor.run.remote(task_refs[cell.task], cell, s)] = (name, s)

    t0 = time.perf_counter()
    bar = tqdm(total=todo, desc=f"sweep {plan.sweep_id}", unit="shard", disable=not progress, dynamic_ncols=True)
    try:
        while futures:
            ready, _ = ray.wait(list(futures), num_returns=1)
            ref = ready[0]
            name, shard = futures.pop(ref)
            try:
                _, rows, _ = ray.get(ref)
                on_shard(shard, rows)
                report.completed += 1
                report.examples += len(rows)
            except Exception as e:  # a failed shard is reported, the others go on
                report.failed[shard.id] = f"{type(e).__name__}: {_first_line(e)}"
                log.error("shard %s (%s) failed: %s", shard.id, plan.cell(shard.cell_id).label, e)
            left[name] -= 1
            if left[name] == 0:  # free the model's resources for the next one
                ray.kill(actors.pop(name))
            elapsed = time.perf_counter() - t0
            bar.set_postfix(examples_s=f"{report.examples / max(elapsed, 1e-9):.1f}", failed=len(report.failed))
            bar.update(1)
    finally:
        bar.close()
        for actor in actors.values():
            ray.kill(actor)
    report.seconds = time.perf_counter() - t0
    return report


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    # RayTaskError puts the traceback first; the cause is on its last line
    return text[-1] if text else type(e).__name__


def shutdown() -> None:
    if ray.is_initialized() and not os.environ.get("ORCHESTRATOR_KEEP_RAY"):
        ray.shutdown()
