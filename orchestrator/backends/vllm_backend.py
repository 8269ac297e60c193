"""The vLLM backend: the same interface as the transformers one, for GPU throughput.

vllm is imported inside the class, so this module imports on a machine without
it. Prompts are tokenized here and handed to vLLM as token ids, and the raw
generated ids go through the same `finish_generation` rule as the transformers
backend, so truncation, stop-string cuts and token boundaries agree between
the two. One model per process: vLLM cannot reliably unload a model and load
another (vllm #3281), so `close` only drops references; end the worker to free
the GPU.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Sequence

from orchestrator.backends.base import (
    TokenizerMixin,
    empty_scored,
    finish_generation,
    pair_token_ids,
    truncate_prompt,
    unscorable_scored,
)
from orchestrator.config import BackendConfig, ModelFamily, ModelSize
from orchestrator.record import Generation, Scored

log = logging.getLogger(__name__)


class VLLMBackend(TokenizerMixin):
    """A model served in-process by `vllm.LLM`."""

    name = "vllm"

    def __init__(self, size: ModelSize, family: ModelFamily, cfg: BackendConfig, threads: int | None = None):
        from vllm import LLM

        path = os.path.expanduser(size.path)
        kwargs: dict = {
            "model": path,
            "tokenizer": os.path.expanduser(size.tokenizer or size.path),
            "revision": size.revision,
            "tokenizer_revision": size.revision,
            "dtype": family.dtype,
            "trust_remote_code": family.trust_remote_code,
            "load_format": "safetensors",  # never unpickle weights
            "seed": 0,
        }
        if cfg.max_length:
            kwargs["max_model_len"] = cfg.max_length
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = int(cfg.max_length or self.llm.llm_engine.model_config.max_model_len)
        tok = self.tokenizer
        self.eos_ids = [tok.eos_token_id] if tok.eos_token_id is not None else []
        self.start_id = next((t for t in (tok.bos_token_id, tok.eos_token_id) if t is not None), 0)

    def generate(self, prompts: list[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        """All prompts in one call: vLLM schedules its own batches."""
        from vllm import SamplingParams

        stop = [s for s in stop if s]
        limit = self.max_length - max_new_tokens
        cut = [truncate_prompt(self.encode(p) or [self.start_id], limit) for p in prompts]
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop or None)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids, _ in cut], params, use_tqdm=False)
        return [
            finish_generation(o.outputs[0].token_ids, stop, self.eos_ids, self._decode, truncated=was_cut)
            for o, (_, was_cut) in zip(outputs, cut, strict=True)
        ]

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[Scored]:
        """Scores from `prompt_logprobs`: the log-prob and rank of every prompt token given those before it."""
        from vllm import SamplingParams

        items: list[tuple[list[int], list[int]]] = []
        unscorable: set[int] = set()
        cut: set[int] = set()
        for n, (context, continuation) in enumerate(pairs):
            ctx, cont = pair_token_ids(context, continuation, self.encode, self.tokenize, self.start_id)
            if len(cont) >= self.max_length - 1:
                # as the transformers backend: NaN in the record instead of a failed shard
                log.warning("a continuation of %d tokens does not fit the context length %d: scored NaN",
                            len(cont), self.max_length)
                unscorable.add(n)
                items.append(([], []))
                continue
            # vLLM must generate one token after the prompt, so the prompt gets max_length - 1 tokens
            if len(ctx) + len(cont) > self.max_length - 1:
                cut.add(n)
            items.append(((ctx + cont)[-(self.max_length - 1) :], cont))
        todo = [i for i, (_, cont) in enumerate(items) if cont]
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1)
        outputs = self.llm.generate([{"prompt_token_ids": items[i][0]} for i in todo], params, use_tqdm=False)
        out: list[Scored] = [unscorable_scored() if i in unscorable else empty_scored() for i in range(len(items))]
        for i, o in zip(todo, outputs, strict=True):
            ids, cont = items[i]
            entries = o.prompt_logprobs[len(ids) - len(cont) :]  # entry k scores prompt token k (entry 0 is None)
            lps, greedy = [], True
            for tok, entry in zip(cont, entries, strict=True):
                lp = entry[tok]
                lps.append(float(lp.logprob))
                greedy = greedy and lp.rank == 1
            out[i] = Scored(logprob=sum(lps), token_logprobs=tuple(lps), token_ids=tuple(cont), is_greedy=greedy,
                            truncated=i in cut)
        return out

    def close(self) -> None:
        self.llm = None
        gc.collect()
