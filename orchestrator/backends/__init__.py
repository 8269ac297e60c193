"""Backends: prompts in, generations and log-likelihoods out. The only package that imports torch.

`load_backend` picks the implementation named by `backend.name` and imports it
lazily, so importing this package (or `base`) costs nothing.
"""

from __future__ import annotations

from orchestrator.backends.base import Backend, BackendError
from orchestrator.config import BackendConfig, ModelFamily, ModelSize

__all__ = ["Backend", "BackendError", "load_backend"]


def load_backend(size: ModelSize, family: ModelFamily, cfg: BackendConfig, threads: int | None = None,
                 gpus: int = 0, gpu_share: float | None = None) -> Backend:
    """Load one model of `family` with the backend `cfg.name` ("transformers" or "vllm").

    gpus: the GPUs the worker was given for this model (`Placement.gpus_per_replica`):
    0 for a CPU placement, 1 for one GPU or a share of one, k > 1 to spread the
    model over k GPUs of one node (transformers: accelerate's device_map; vLLM:
    tensor parallelism). gpu_share: `Placement.num_gpus` when it is a fraction of
    one GPU; vLLM then claims only that share of the GPU's memory (it would take
    90% by default); transformers allocates what it uses and ignores it.
    """
    if cfg.name == "transformers":
        from orchestrator.backends.hf import TransformersBackend

        return TransformersBackend(size, family, cfg, threads=threads, gpus=gpus)
    if cfg.name == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise BackendError(
                "backend.name=vllm but vllm is not installed in this environment "
                f"({type(e).__name__}: {e}). Install it where a CUDA GPU is available with "
                "`pip install 'orchestrator[vllm]'` (or `pip install vllm`), or use backend.name=transformers."
            ) from e
        from orchestrator.backends.vllm_backend import VLLMBackend

        return VLLMBackend(size, family, cfg, threads=threads, gpus=gpus, gpu_share=gpu_share)
    if cfg.name == "echo":  # no model: for benchmarks of the orchestration path (bench/scale.py)
        from orchestrator.backends.echo import EchoBackend

        return EchoBackend(size, family, cfg)
    raise BackendError(f"backend.name={cfg.name!r} is unknown; use transformers or vllm")
