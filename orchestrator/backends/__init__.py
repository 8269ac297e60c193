"""Backends: prompts in, generations and log-likelihoods out. The only package that imports torch.

`load_backend` picks the implementation named by `backend.name` and imports it
lazily, so importing this package (or `base`) costs nothing.
"""

from __future__ import annotations

from orchestrator.backends.base import Backend, BackendError
from orchestrator.config import BackendConfig, ModelFamily, ModelSize

__all__ = ["Backend", "BackendError", "load_backend"]


def load_backend(size: ModelSize, family: ModelFamily, cfg: BackendConfig, threads: int | None = None) -> Backend:
    """Load one model of `family` with the backend `cfg.name` ("transformers" or "vllm")."""
    if cfg.name == "transformers":
        from orchestrator.backends.hf import TransformersBackend

        return TransformersBackend(size, family, cfg, threads=threads)
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

        return VLLMBackend(size, family, cfg, threads=threads)
    raise BackendError(f"backend.name={cfg.name!r} is unknown; use transformers or vllm")
