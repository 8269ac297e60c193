"""The vLLM backend: the same interface as the transformers one, for GPU throughput.

vllm is imported inside the class, so this module imports on a machine without
it; what does not need vLLM (the engine's arguments, which pairs fit the
context, turning prompt log-probs into a Scored) is plain functions, tested
without it. Prompts are tokenized here and handed to vLLM as token ids, and
the raw generated ids go through the same `finish_generation` rule, the same
end-of-sequence ids (`merge_eos_ids`) and the same fit rule (`fit_for_scoring`)
as the transformers backend, so truncation, NaN for what cannot be scored,
stop-string cuts and token boundaries agree between the two.

Each call hands vLLM all of its prompts at once (`run_shard` makes one call per
shard and generation setting); vLLM schedules its own batches, at most
`backend.batch_size` sequences at a time (`max_num_seqs`). A model placed on
k > 1 GPUs runs with `tensor_parallel_size=k`. One model per process: vLLM
cannot reliably unload a model and load another (vllm #3281), so `close` only
drops references; end the worker to free the GPU.
"""

from __future__ import annotations

import gc
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.backends.base import (
    BackendError,
    TokenizerMixin,
    empty_scored,
    finish_generation,
    fit_for_scoring,
    merge_eos_ids,
    pair_token_ids,
    truncate_prompt,
    unscorable_scored,
)
from orchestrator.config import BackendConfig, ModelFamily, ModelSize
from orchestrator.record import Generation, Scored

log = logging.getLogger(__name__)

# Off on purpose: with prefix caching on, vLLM's prompt_logprobs for the same prompt change with the order of the
# requests around it (vllm-project/vllm#42019, open; fix proposed in #42245), and this project's scores are
# prompt_logprobs. Turn it on only with a vLLM that has the fix: it speeds up few-shot prompts sharing exemplars.
PREFIX_CACHING = False


def llm_kwargs(size: ModelSize, family: ModelFamily, cfg: BackendConfig, gpus: int = 0,
               gpu_share: float | None = None) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM`. Pure.

    gpus = k > 1: tensor parallelism over the worker's k GPUs. gpu_share < 1: the
    worker shares its GPU (placement's fraction), so vLLM claims only that share
    of its memory instead of its default 90%.
    """
    kwargs: dict[str, Any] = {
        "model": os.path.expanduser(size.path),
        "tokenizer": os.path.expanduser(size.tokenizer or size.path),
        "revision": size.revision,
        "tokenizer_revision": size.revision,
        "dtype": family.dtype,
        "trust_remote_code": family.trust_remote_code,
        "load_format": "safetensors",  # never unpickle weights
        "seed": 0,
        "max_num_seqs": cfg.batch_size,  # backend.batch_size: sequences vLLM runs at once
        "enable_prefix_caching": PREFIX_CACHING,
    }
    if cfg.max_length:
        kwargs["max_model_len"] = cfg.max_length
    if gpus > 1:
        kwargs["tensor_parallel_size"] = gpus
    if gpu_share is not None:
        if not (isinstance(gpu_share, (int, float)) and math.isfinite(gpu_share) and gpu_share > 0):
            raise BackendError(f"gpu_share={gpu_share!r} must be a fraction of one GPU in (0, 1], or None")
        if gpu_share < 1:
            kwargs["gpu_memory_utilization"] = float(gpu_share)
    return kwargs


def generation_params(max_new_tokens: int, stop: Sequence[str], eos_ids: Sequence[int],
                      tokenizer_eos: int | None) -> dict[str, Any]:
    """`SamplingParams` for greedy generation: like the transformers backend's fresh GenerationConfig.

    Greedy (temperature 0; penalties stay at vLLM's neutral defaults: an explicit
    SamplingParams takes nothing from the model's generation_config). vLLM
    always ends at the tokenizer's EOS; the other end-of-sequence ids the
    transformers backend ends at (`merge_eos_ids`) are named as stop_token_ids,
    so every vLLM version stops at the same ids. vLLM stops at the stop strings
    (to save work) and `finish_generation` cuts the text and ids as for transformers.
    """
    params: dict[str, Any] = {"temperature": 0.0, "max_tokens": max_new_tokens, "stop": list(stop) or None}
    extra = [i for i in eos_ids if i != tokenizer_eos]
    if extra:
        params["stop_token_ids"] = extra
    return params


# vLLM returns the log-prob and rank of every prompt token (and the top 1); it must generate one token to do so
SCORING_PARAMS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 1}


def scoring_window(max_length: int) -> int:
    """Tokens of context + continuation one scoring prompt holds: vLLM needs prompt + 1 generated <= max_length."""
    return max_length - 1


def plan_scoring(id_pairs: Sequence[tuple[list[int], list[int]]], max_length: int
                 ) -> list[tuple[list[int], list[int], bool] | None]:
    """Per (context ids, continuation ids): (prompt ids, continuation ids, context cut?), or None if unscorable."""
    out: list[tuple[list[int], list[int], bool] | None] = []
    for ctx, cont in id_pairs:
        fit = fit_for_scoring(ctx, cont, scoring_window(max_length))
        out.append(None if fit is None else (fit[0], cont, fit[1]))
    return out


def scored_from_prompt_logprobs(prompt_logprobs: Sequence[Mapping[int, Any] | None], prompt_len: int,
                                cont: Sequence[int], truncated: bool = False) -> Scored:
    """A Scored from vLLM's prompt log-probs: entry k holds prompt token k's log-prob and rank (entry 0 is None).

    The continuation is the last len(cont) prompt tokens; it is greedy when each
    of its tokens was the model's first choice (rank 1), as argmax in transformers.
    """
    c = len(cont)
    if not 0 < c < prompt_len or len(prompt_logprobs) != prompt_len:
        raise BackendError(f"prompt_logprobs of {len(prompt_logprobs)} entries cannot score {c} of {prompt_len} "
                           "prompt tokens (each needs a token before it)")
    lps: list[float] = []
    greedy = True
    for tok, entry in zip(cont, prompt_logprobs[prompt_len - c :], strict=True):
        if entry is None or tok not in entry:
            raise BackendError(f"vLLM returned no log-prob for prompt token {tok}")
        lp = entry[tok]
        lps.append(float(lp.logprob))
        greedy = greedy and lp.rank == 1
    return Scored(logprob=math.fsum(lps), token_logprobs=tuple(lps), token_ids=tuple(int(t) for t in cont),
                  is_greedy=greedy, truncated=truncated)


def _model_config(llm) -> Any:
    return getattr(llm, "model_config", None) or llm.llm_engine.model_config


def _vocab_size(model_config: Any) -> int | None:
    """Rows of the output head (what transformers filters EOS ids by); None where the engine does not say."""
    get = getattr(model_config, "get_vocab_size", None)
    return int(get()) if callable(get) else None


def _generation_eos(path: str, revision: str | None, hf_config: Any) -> int | list[int] | None:
    """The generation config's eos_token_id, as transformers loads it (from the model config when it has none)."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path, revision=revision).eos_token_id
    except OSError:  # no generation_config.json: transformers derives one from the model config
        return getattr(hf_config, "eos_token_id", None)


class VLLMBackend(TokenizerMixin):
    """A model served in-process by `vllm.LLM`."""

    name = "vllm"

    def __init__(self, size: ModelSize, family: ModelFamily, cfg: BackendConfig, threads: int | None = None,
                 gpus: int = 0, gpu_share: float | None = None):
        from vllm import LLM

        kwargs = llm_kwargs(size, family, cfg, gpus=gpus, gpu_share=gpu_share)
        self.batch_size = cfg.batch_size
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        mc = _model_config(self.llm)
        self.max_length = int(cfg.max_length or mc.max_model_len)
        tok = self.tokenizer
        self.eos_ids = merge_eos_ids(_generation_eos(kwargs["model"], size.revision, getattr(mc, "hf_config", None)),
                                     tok.eos_token_id, _vocab_size(mc))
        # the token an empty context/prompt starts from (as transformers: BOS, else EOS, else pad)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.start_id = next((t for t in (tok.bos_token_id, tok.eos_token_id, pad) if t is not None), 0)

    def generate(self, prompts: list[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        """All prompts in one call: vLLM schedules its own batches."""
        from vllm import SamplingParams

        stop = [s for s in stop if s]
        limit = self.max_length - max_new_tokens
        cut = [truncate_prompt(self.encode(p) or [self.start_id], limit) for p in prompts]
        params = SamplingParams(**generation_params(max_new_tokens, stop, self.eos_ids, self.tokenizer.eos_token_id))
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids, _ in cut], params, use_tqdm=False)
        return [
            finish_generation(o.outputs[0].token_ids, stop, self.eos_ids, self._decode, truncated=was_cut)
            for o, (_, was_cut) in zip(outputs, cut, strict=True)
        ]

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[Scored]:
        """Scores from `prompt_logprobs`, every scorable pair in one call; NaN where the continuation cannot fit."""
        from vllm import SamplingParams

        id_pairs = [pair_token_ids(c, x, self.encode, self.tokenize, self.start_id) for c, x in pairs]
        plan = plan_scoring(id_pairs, self.max_length)
        out: list[Scored] = []
        for p, (_, cont) in zip(plan, id_pairs, strict=True):
            if p is None:
                log.warning("a continuation of %d tokens does not fit the context length %d: scored NaN",
                            len(cont), self.max_length)
            out.append(unscorable_scored() if p is None else empty_scored())
        todo = [i for i, p in enumerate(plan) if p is not None and p[1]]
        if not todo:
            return out
        prompts = [{"prompt_token_ids": plan[i][0]} for i in todo]  # type: ignore[index]
        outputs = self.llm.generate(prompts, SamplingParams(**SCORING_PARAMS), use_tqdm=False)
        for i, o in zip(todo, outputs, strict=True):
            ids, cont, was_cut = plan[i]  # type: ignore[misc]
            out[i] = scored_from_prompt_logprobs(o.prompt_logprobs, len(ids), cont, truncated=was_cut)
        return out

    def close(self) -> None:
        self.llm = None
        gc.collect()
