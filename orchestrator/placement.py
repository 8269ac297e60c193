"""Placement: what each model size asks of the cluster, decided before any work. Pure.

Given the plan's models and a described cluster (nodes with CPUs, GPUs, GPU
memory and RAM), `place` returns one `Placement` per model, largest first:
how many CPUs and GPUs its worker asks Ray for, how many GPUs of one node it
would span (`gpus_per_replica`: the backend spreads the model over them, with
accelerate's `device_map` for transformers or `tensor_parallel_size` for vLLM),
and how many replicas of it the cluster could hold at once. Ray schedules GPUs, not GPU memory: on nodes with GPUs
of different sizes a model asks for what the tightest node that fits needs.
A model that fits nowhere raises `ConfigError` naming the
model, what it needs and what the cluster has.

The memory estimate (the rule, stated once):

    need = weights * (1 + HEADROOM) + OVERHEAD per GPU (or per CPU worker)
    weights = params * bytes per parameter of the dtype

HEADROOM = 20% covers the KV cache and activations of inference at the batch
sizes this project runs: "Total Inference Memory ~ 1.2 x Model Memory"
(Anthony, Biderman et al., "Transformer Math 101", EleutherAI blog, 2023).
OVERHEAD = 1 GB is each process's CUDA context and allocator slack (or the
Python/torch runtime on CPU). A model whose estimate is wrong (long contexts,
big batches, mixture-of-experts) declares its own: model.catalog.<size>.memory_gb.

`dtype: auto` loads the checkpoint's own dtype, which the config does not
know: it is estimated as bfloat16 (2 bytes) on a GPU and float32 (4 bytes) on
CPU, where transformers loads float32 by default.

GB here is 2**30 bytes (what nvidia-smi and Ray report as GiB/MiB multiples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.config import ConfigError, SweepConfig
from orchestrator.plan import ModelSpec

GB = 2**30
HEADROOM = 0.2  # KV cache + activations, as a fraction of the weights (Transformer Math 101)
OVERHEAD_BYTES = 1 * GB  # per process (per GPU it spans): CUDA context, allocator, runtime
GPU_GRID = 8  # a shared GPU is handed out in eighths, so Ray can pack up to 8 small models on one GPU
BYTES_PER_PARAM: dict[str, float] = {
    "float64": 8, "double": 8,
    "float32": 4, "float": 4,
    "bfloat16": 2, "float16": 2, "half": 2,
    "int8": 1, "uint8": 1,
}


@dataclass(frozen=True)
class Node:
    """One node as the scheduler sees it. Memory in bytes; None where unknown."""

    name: str
    cpus: float
    gpus: int = 0
    gpu_memory: int | None = None  # bytes per GPU (the smallest GPU's, if they differ)
    memory: int | None = None  # bytes of RAM workers may use (Ray's `memory` resource)


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    def describe(self) -> str:
        """'2 nodes: 2 GPUs x 24 GB, 16 CPUs each' style summary for error messages."""
        if not self.nodes:
            return "no nodes"
        gpu_nodes = [n for n in self.nodes if n.gpus]
        parts = [f"{len(self.nodes)} node{'s' * (len(self.nodes) != 1)}, {self.gpus} GPUs in all"]
        if gpu_nodes:
            big = max(gpu_nodes, key=lambda n: (n.gpus * (n.gpu_memory or 0), n.gpus))
            parts.append(f"largest GPU node {big.name!r}: {big.gpus} GPUs x {_gb(big.gpu_memory)}")
        cpu = max(self.nodes, key=lambda n: n.cpus)
        parts.append(f"largest node by CPUs: {cpu.cpus:g} CPUs, {_gb(cpu.memory)} RAM")
        return "; ".join(parts)


@dataclass(frozen=True)
class Policy:
    """What the config asks for, as plain data (see `policy_from_config`)."""

    cpus_per_model: float = 1.0
    gpus_per_model: float | None = None  # None: from the estimate; 0: CPU only; > 0: this many per model
    device: str = "auto"  # backend.device: auto | cpu | cuda
    backend: str = "transformers"
    memory_gb: Mapping[str, float] = field(default_factory=dict)  # model name -> its declared need (GB)


@dataclass(frozen=True)
class Placement:
    """One model's resource request.

    num_gpus < 1 shares one GPU (a multiple of 1/GPU_GRID); an integer k >= 1
    spans k GPUs of one node (gpus_per_replica = k). On CPU both are 0.
    replicas: how many copies the cluster could run at once if the model had
    it to itself (an upper bound for a work queue).
    """

    model: str
    params: int
    dtype: str  # the dtype the estimate used (auto resolved)
    need_bytes: int  # the whole model: weights + headroom + one process overhead
    num_cpus: float
    num_gpus: float
    gpus_per_replica: int
    replicas: int
    declared: bool = False  # need_bytes came from model.catalog.<size>.memory_gb

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"

    @property
    def need_gb(self) -> float:
        return self.need_bytes / GB


def _gb(b: int | float | None) -> str:
    return "unknown" if b is None else f"{b / GB:.1f} GB"


def bytes_per_param(dtype: str, on_gpu: bool, model: str = "?") -> tuple[float, str]:
    """Bytes per parameter of a dtype and the dtype used; `auto` is bf16 on GPU, fp32 on CPU (module docstring)."""
    d = dtype.lower().removeprefix("torch.")
    if d == "auto":
        d = "bfloat16" if on_gpu else "float32"
    if d not in BYTES_PER_PARAM:
        raise ConfigError(
            f"model.dtype={dtype!r} (model {model}) has no known size per parameter; use one of "
            f"{sorted(BYTES_PER_PARAM)} or auto"
        )
    return BYTES_PER_PARAM[d], d


def weights_bytes(params: int, dtype: str, on_gpu: bool = True) -> int:
    return math.ceil(params * bytes_per_param(dtype, on_gpu)[0])


def memory_need(params: int, dtype: str, on_gpu: bool = True) -> int:
    """Weights x (1 + HEADROOM) + OVERHEAD_BYTES: one process holding the whole model."""
    return math.ceil(weights_bytes(params, dtype, on_gpu) * (1 + HEADROOM)) + OVERHEAD_BYTES


def policy_from_config(cfg: SweepConfig) -> Policy:
    declared = {n: float(s.memory_gb) for n, s in cfg.model.catalog.items() if getattr(s, "memory_gb", None)}
    return Policy(cpus_per_model=cfg.cluster.cpus_per_model, gpus_per_model=cfg.cluster.gpus_per_model,
                  device=cfg.backend.device, backend=cfg.backend.name, memory_gb=declared)


def place(models: Sequence[ModelSpec], cluster: Cluster, policy: Policy = Policy()) -> list[Placement]:
    """Each model's request, largest first; ConfigError listing every model that fits nowhere."""
    if not cluster.nodes:
        raise ConfigError("the cluster has no nodes: start Ray workers or check cluster.address")
    use_gpu = _use_gpu(cluster, policy)
    out: list[Placement] = []
    errors: list[str] = []
    for m in models:
        try:
            out.append(_place_gpu(m, cluster, policy) if use_gpu else _place_cpu(m, cluster, policy))
        except _NoFit as e:
            errors.append(str(e))
    if errors:
        raise ConfigError(
            "the sweep cannot be placed on this cluster (nothing has run):\n  - " + "\n  - ".join(errors)
            + f"\nThe cluster: {cluster.describe()}."
        )
    return sorted(out, key=lambda p: (-p.need_bytes, -p.params, p.model))


class _NoFit(Exception):
    pass


def _use_gpu(cluster: Cluster, policy: Policy) -> bool:
    if policy.gpus_per_model is not None and policy.gpus_per_model < 0:
        raise ConfigError(f"cluster.gpus_per_model={policy.gpus_per_model} must be >= 0, or null (from placement)")
    if policy.device == "cpu" or policy.gpus_per_model == 0:
        return False
    if cluster.gpus == 0:
        if policy.device == "cuda" or policy.gpus_per_model:
            raise ConfigError(
                f"backend.device={policy.device}, cluster.gpus_per_model={policy.gpus_per_model}: the cluster has "
                f"no GPUs ({cluster.describe()}); use backend.device=auto and cluster.gpus_per_model=null to run "
                "on CPUs, or add GPU nodes"
            )
        return False
    unknown = [n.name for n in cluster.nodes if n.gpus and not n.gpu_memory]
    if unknown:
        raise ConfigError(
            f"the GPU memory of nodes {unknown} is unknown, so no model can be sized against it; set "
            "cluster.gpu_memory_gb (GB per GPU, e.g. cluster.gpu_memory_gb=80)"
        )
    return True


def _need(m: ModelSpec, policy: Policy, on_gpu: bool) -> tuple[int, str, bool]:
    """(bytes for the whole model in one process, dtype used, declared?)."""
    _, dtype = bytes_per_param(m.dtype, on_gpu, m.name)
    if m.name in policy.memory_gb:
        gb = policy.memory_gb[m.name]
        if not gb > 0:
            raise ConfigError(f"model.catalog.{m.name}.memory_gb={gb} must be > 0 (GB the model needs), or null")
        return math.ceil(gb * GB), dtype, True
    return memory_need(m.params, m.dtype, on_gpu), dtype, False


def _place_cpu(m: ModelSpec, cluster: Cluster, policy: Policy) -> Placement:
    need, dtype, declared = _need(m, policy, on_gpu=False)
    cpus = min(policy.cpus_per_model, max(n.cpus for n in cluster.nodes))
    replicas = sum(_cpu_replicas(n, cpus, need) for n in cluster.nodes)
    if replicas == 0:
        big = max(cluster.nodes, key=lambda n: n.memory or 0)
        raise _NoFit(
            f"{m.name} ({m.params:,} params, {dtype}) needs {_gb(need)} of RAM on one node, but the largest "
            f"node has {_gb(big.memory)}: use a smaller dtype (model.dtype=bfloat16), bigger nodes, or GPUs"
        )
    return Placement(m.name, m.params, dtype, need, cpus, 0.0, 0, replicas, declared)


def _cpu_replicas(n: Node, cpus: float, need: int) -> int:
    by_cpu = int(n.cpus // cpus) if cpus > 0 else 0
    return by_cpu if n.memory is None else min(by_cpu, n.memory // need)


def _place_gpu(m: ModelSpec, cluster: Cluster, policy: Policy) -> Placement:
    need, dtype, declared = _need(m, policy, on_gpu=True)
    gpu_nodes = [n for n in cluster.nodes if n.gpus and n.gpu_memory]
    body = need - OVERHEAD_BYTES  # weights + headroom, split across the GPUs a model spans
    fixed = policy.gpus_per_model
    fits: dict[int, float] = {}  # node index -> the num_gpus this model needs there
    for i, n in enumerate(gpu_nodes):
        mem = n.gpu_memory or 0
        if fixed is not None and fixed > 0:
            num_gpus = float(fixed) if fixed < 1 else float(math.ceil(fixed))
        elif need <= mem:
            num_gpus = math.ceil(need / mem * GPU_GRID) / GPU_GRID
        elif mem > OVERHEAD_BYTES:
            num_gpus = float(_span(body, mem, policy.backend))
        else:
            continue
        k = int(num_gpus) if num_gpus >= 1 else 1
        per_gpu, room = (body / k + OVERHEAD_BYTES, mem) if num_gpus >= 1 else (need, mem * num_gpus)
        if per_gpu <= room and k <= n.gpus:
            fits[i] = num_gpus
    if not fits:
        raise _NoFit(_gpu_refusal(m, dtype, need, declared, gpu_nodes, fixed, policy.backend))
    # Ray knows GPUs, not their memory: ask what the tightest fitting node needs, which every fitting node grants
    num_gpus = max(fits.values())
    k = int(num_gpus) if num_gpus >= 1 else 1
    fitting = [n for i, n in enumerate(gpu_nodes) if i in fits]
    cpus = min(policy.cpus_per_model, max(n.cpus for n in fitting))
    replicas = sum(_gpu_replicas(n, num_gpus, cpus) for n in fitting)
    return Placement(m.name, m.params, dtype, need, cpus, num_gpus, k, replicas, declared)


def _gpu_replicas(n: Node, num_gpus: float, cpus: float) -> int:
    by_gpu = n.gpus * int(1 / num_gpus + 1e-9) if num_gpus < 1 else int(n.gpus // num_gpus)
    return min(by_gpu, int(n.cpus // cpus)) if cpus > 0 else by_gpu


def _gpu_refusal(m: ModelSpec, dtype: str, need: int, declared: bool, gpu_nodes: list[Node],
                 fixed: float | None, backend: str) -> str:
    big = max(gpu_nodes, key=lambda n: (n.gpu_memory or 0, n.gpus))
    mem = big.gpu_memory or 0
    if fixed:
        what = f"more than cluster.gpus_per_model={fixed:g} GPUs of {_gb(mem)} hold"
    elif mem > OVERHEAD_BYTES:
        what = f"{_span(need - OVERHEAD_BYTES, mem, backend)} GPUs of {_gb(mem)} on one node"
    else:
        what = "more than one GPU holds"
    weights = _gb(weights_bytes(m.params, dtype))
    how = (f"declared as model.catalog.{m.name}.memory_gb" if declared
           else f"{weights} of weights + {HEADROOM:.0%} headroom + {_gb(OVERHEAD_BYTES)} per GPU")
    most = max(gpu_nodes, key=lambda n: (n.gpus, n.gpu_memory or 0))
    return (
        f"{m.name} ({m.params:,} params, {dtype}) needs {_gb(need)} ({how}): {what}, but the largest GPU node "
        f"{most.name!r} has {most.gpus} GPUs x {_gb(most.gpu_memory)}. A model spans the GPUs of one node only: "
        "use nodes with more or bigger GPUs, a smaller dtype (model.dtype=int8 halves bfloat16), or drop the size"
    )


def _span(body: int, gpu_memory: int, backend: str) -> int:
    """GPUs of one node a model must span: each holds body / k plus its own overhead.

    vLLM shards attention heads over tensor-parallel ranks; head counts are
    multiples of powers of two in common families, so vLLM's k is rounded up to one.
    """
    k = max(1, math.ceil(body / (gpu_memory - OVERHEAD_BYTES)))
    if backend == "vllm":
        k = 1 << (k - 1).bit_length()
    return k


def cluster_from_ray(nodes: Sequence[Mapping], gpu_memory_gb: float | None = None,
                     probed: Mapping[str, int] | None = None) -> Cluster:
    """A Cluster from `ray.nodes()` (alive nodes only).

    Ray reports CPU, GPU and `memory` (RAM for workers) per node, not GPU
    memory: that comes from `probed` (node id -> bytes per GPU, measured on the
    node) or else `cluster.gpu_memory_gb`.
    """
    out = []
    for n in nodes:
        if not n.get("Alive", True):
            continue
        r = n.get("Resources") or {}
        node_id = str(n.get("NodeID", ""))
        gpu_mem = (probed or {}).get(node_id)
        if gpu_mem is None and gpu_memory_gb is not None:
            if not gpu_memory_gb > 0:
                raise ConfigError(f"cluster.gpu_memory_gb={gpu_memory_gb} must be > 0 (GB per GPU), or null")
            gpu_mem = int(gpu_memory_gb * GB)
        name = f"{n.get('NodeManagerAddress') or '?'}/{node_id[:8]}"
        out.append(Node(name=name, cpus=float(r.get("CPU", 0)), gpus=int(r.get("GPU", 0)),
                        gpu_memory=gpu_mem if r.get("GPU") else None,
                        memory=int(r["memory"]) if r.get("memory") else None))
    return Cluster(tuple(out))
