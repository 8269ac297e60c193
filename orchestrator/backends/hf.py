"""The transformers backend: any causal LM on the Hub or on disk, on CPU, one GPU, or spread over k GPUs.

Loading is locked down: weights only from safetensors (a pickle checkpoint can
run code when loaded) and no remote code unless the family's config asks for
it. Generation is batched greedy decoding with left padding; scoring runs each
distinct context once and scores its continuations from its key/value cache
(`TransformersBackend.loglikelihood`).

A model placed on k > 1 GPUs (`orchestrator.placement`: Ray gives its worker k
GPUs of one node) is loaded with accelerate's `device_map="auto"`, layers
spread over exactly those GPUs (`hf_load_kwargs`); inputs go to the GPU that
holds the embeddings.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.cache_utils import DynamicCache, DynamicLayer

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
from orchestrator.placement import HEADROOM, OVERHEAD_BYTES
from orchestrator.record import Generation, Scored

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """'auto' means the GPU when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype | str:
    """A config's dtype string ('float32', 'bfloat16', 'auto') as transformers wants it."""
    if name == "auto":
        return "auto"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise BackendError(f"model.dtype={name!r} is not a torch dtype: use float32, bfloat16, float16 or auto")
    return dtype


def gpu_weight_budget(gpu_bytes: int) -> int:
    """Bytes of weights one GPU may hold: placement's rule turned around (need = weights x 1.2 + 1 GB per GPU).

    The rest of the GPU is left for the KV cache, activations and the CUDA
    context, so a model placement sized onto k GPUs fits on them.
    """
    return max(0, int((gpu_bytes - OVERHEAD_BYTES) / (1 + HEADROOM)))


def hf_load_kwargs(device: torch.device, dtype: torch.dtype | str, gpus: int, gpu_bytes: Sequence[int]) -> dict:
    """`from_pretrained` keyword arguments for where the model goes. Pure: `gpu_bytes` is each visible GPU's memory.

    gpus <= 1, or a CPU device: only the dtype (the model is moved to the
    device whole, as before). gpus = k > 1 on CUDA: accelerate's
    `device_map="auto"` with a `max_memory` for GPUs 0..k-1 only (Ray's
    CUDA_VISIBLE_DEVICES makes the worker's k GPUs 0..k-1), so the layers spread
    over exactly those; no "cpu" entry, so a model too big for them fails to load
    instead of running from CPU memory.
    """
    kwargs: dict = {"dtype": dtype}
    if gpus <= 1 or device.type != "cuda":
        return kwargs
    if len(gpu_bytes) < gpus:
        raise BackendError(
            f"the model was placed on {gpus} GPUs but this worker sees {len(gpu_bytes)} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); the worker must be started "
            f"with num_gpus={gpus} (orchestrator.placement)"
        )
    kwargs["device_map"] = "auto"
    kwargs["max_memory"] = {i: gpu_weight_budget(gpu_bytes[i]) for i in range(gpus)}
    return kwargs


def _has_accelerate() -> bool:
    return importlib.util.find_spec("accelerate") is not None


def _require_accelerate(gpus: int) -> None:
    if not _has_accelerate():
        raise BackendError(
            f"this model is placed on {gpus} GPUs, and spreading one model over GPUs needs accelerate, which is not "
            "installed: `pip install accelerate` (or `pip install 'orchestrator[gpu]'`) on every GPU worker"
        )


def _visible_gpu_bytes() -> list[int]:
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]


def _require_safetensors(path: str) -> None:
    """Refuse a local checkpoint without safetensors weights before transformers looks for a pickle."""
    if os.path.isdir(path) and not any(
        f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in os.listdir(path)
    ):
        raise BackendError(_no_safetensors(path))


def _no_safetensors(path: str) -> str:
    return (
        f"{path!r} has no safetensors weights (*.safetensors); pickle checkpoints (pytorch_model.bin) are refused "
        "because loading them can execute arbitrary code. Convert it once with "
        "`AutoModelForCausalLM.from_pretrained(path).save_pretrained(path, safe_serialization=True)` in a trusted "
        "environment, or pick a revision that ships safetensors."
    )


def _check_on_gpus(model, gpus: int) -> None:
    """Refuse a device map that put layers on CPU or disk: that would run, orders of magnitude slower."""
    off = sorted({str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()} & {"cpu", "disk", "meta"})
    if off:
        raise BackendError(
            f"{model.name_or_path!r} does not fit on its {gpus} GPUs: accelerate placed layers on {off}. Declare its "
            "real need (model.catalog.<size>.memory_gb) so placement gives it more GPUs, or use a smaller dtype"
        )


class _StopOnStrings(StoppingCriteria):
    """Marks a row finished once its generated text contains a stop string.

    It decodes the whole generated part of each row every step, so a stop string
    that spans several tokens (or, for a character tokenizer, several characters)
    is seen the step it completes. transformers keeps a finished row finished and
    ends `generate` when every row is.
    """

    def __init__(self, tokenizer, stop: Sequence[str], prompt_len: int):
        self.tokenizer = tokenizer
        self.stop = list(stop)
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :].tolist(), skip_special_tokens=True)
        done = [any(s in t for s in self.stop) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _NoSharedCache(Exception):
    """The model's key/value cache cannot be row-selected: its pairs get full forward passes instead."""


def _output_cache(result) -> object:
    for name in ("cache", "past_key_values"):
        cache = getattr(result, name, None)
        if cache is not None:
            return cache
    return None


def _dynamic_layers(cache: object) -> list[DynamicLayer]:
    """The layers of a plain DynamicCache, whose keys/values are [batch, heads, seq, dim] tensors.

    Only these are copied row by row for the continuations (`index_select`, what
    `Cache.batch_select_indices` does in place, on a new DynamicCache so the
    context's cache stays whole for the next chunk). Sliding-window, static,
    quantized, linear-attention or shared-KV layers keep other state: refused.
    """
    layers = getattr(cache, "layers", None)
    if not isinstance(cache, DynamicCache) or not layers:
        raise _NoSharedCache(f"the model returned a {type(cache).__name__} cache, not a DynamicCache")
    odd = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if odd or not all(layer.is_initialized and layer.keys is not None for layer in layers):
        raise _NoSharedCache(f"its cache has {odd or 'uninitialized'} layers")
    return list(layers)


def _as_full_row(item: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
    """(context, continuation) as the full pass reads it: every id but the last, and the continuation."""
    ctx, cont = item
    return (ctx + cont)[:-1], cont


def budget_batches(lengths: Sequence[tuple[int, int]], max_rows: int, budget: int) -> list[list[int]]:
    """Keys of (key, length) longest first, cut into batches of at most `max_rows` rows and rows x longest <= budget.

    The longest row of a batch sets its padded length; a row longer than the
    budget still gets a batch of its own. Ties keep their input order.
    """
    batches: list[list[int]] = []
    batch: list[int] = []
    width = 0
    for key, length in sorted(lengths, key=lambda kl: kl[1], reverse=True):
        if batch and (len(batch) >= max_rows or (len(batch) + 1) * width > budget):
            batches.append(batch)
            batch = []
        if not batch:
            width = length
        batch.append(key)
    if batch:
        batches.append(batch)
    return batches


class TransformersBackend(TokenizerMixin):
    """A Hugging Face causal LM behind the Backend interface."""

    name = "transformers"
    on_batch: Callable[[int], None] | None = None  # called with each finished batch's rows (progress)

    def __init__(self, size: ModelSize, family: ModelFamily, cfg: BackendConfig, threads: int | None = None,
                 gpus: int = 0, prefix_cache: bool = True, token_budget: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        path = os.path.expanduser(size.path)
        tok_path = os.path.expanduser(size.tokenizer or size.path)
        _require_safetensors(path)
        self.batch_size = cfg.batch_size
        self.device = resolve_device(cfg.device)
        spread = gpus > 1 and self.device.type == "cuda"
        if spread:
            _require_accelerate(gpus)
        place = hf_load_kwargs(self.device, resolve_dtype(family.dtype), gpus, _visible_gpu_bytes() if spread else [])
        self.tokenizer = AutoTokenizer.from_pretrained(
            tok_path, revision=size.revision, trust_remote_code=family.trust_remote_code
        )
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path,
                revision=size.revision,
                trust_remote_code=family.trust_remote_code,
                use_safetensors=True,
                **place,
            )
        except OSError as e:  # a hub repo without safetensors
            if "safetensors" in str(e):
                raise BackendError(_no_safetensors(path)) from e
            raise
        if "device_map" in place:
            _check_on_gpus(model, gpus)
            self.device = model.get_input_embeddings().weight.device  # inputs go where the embeddings are
            self.model = model.eval()
        else:
            self.model = model.to(self.device).eval()
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if self.pad_id is None:
            self.pad_id = 0
        self.eos_ids = self._eos_ids()
        # the token an empty context/prompt starts from
        self.start_id = next((t for t in (tok.bos_token_id, tok.eos_token_id, self.pad_id) if t is not None), 0)
        self.max_length = self._max_length(cfg.max_length)
        forward = inspect.signature(self.model.forward).parameters
        self._keep_logits = "logits_to_keep" in forward
        self._has_position_ids = "position_ids" in forward
        # transformers 5 names the key/value cache argument `cache`; older and remote-code models `past_key_values`
        self._cache_arg = next((a for a in ("cache", "past_key_values") if a in forward), None)
        self.prefix_cache = prefix_cache  # False: every pair gets a full forward pass (the reference path)
        self._shared_cache_ok: bool | None = None  # False once the model's cache proved not row-selectable
        self.token_budget = token_budget  # rows x padded length per scoring pass; None: batch_size x max_length

    def _eos_ids(self) -> list[int]:
        """End-of-sequence ids: the model's generation config's (chat models list several) and the tokenizer's."""
        head = self.model.get_output_embeddings()
        vocab = head.weight.shape[0] if head is not None else None
        return merge_eos_ids(self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id, vocab)

    def _max_length(self, configured: int | None) -> int:
        """backend.max_length, or the model's own; never more than the positions the model declares.

        A learned position table (GPT-2, the zoo) has no row past its size, so a
        longer context would fail the shard with an IndexError mid-run.
        """
        declared = self._declared_positions()
        if configured and declared and configured > declared:
            raise BackendError(
                f"backend.max_length={configured} exceeds the {declared} positions {self.model.name_or_path!r} "
                f"declares in its config; set backend.max_length to at most {declared} or leave it unset"
            )
        return configured or self._model_max_length()

    def _declared_positions(self) -> int | None:
        cfg = self.model.config
        for key in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _model_max_length(self) -> int:
        cfg = self.model.config
        for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            return tok_max
        log.warning("cannot tell %s's context length; assuming 2048 (set backend.max_length)", self.model.name_or_path)
        return 2048

    # --- tokens ---------------------------------------------------------------------------------------------

    # --- generation -----------------------------------------------------------------------------------------

    def generate(self, prompts: list[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        """Greedy generation in batches of similar length, returned in the prompts' order."""
        stop = [s for s in stop if s]
        limit = self.max_length - max_new_tokens
        cut = [truncate_prompt(self.encode(p) or [self.start_id], limit) for p in prompts]
        encoded = [ids for ids, _ in cut]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
        out: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            rows = self._generate_batch([encoded[i] for i in idx], max_new_tokens, stop)
            for i, ids in zip(idx, rows, strict=True):
                out[i] = finish_generation(ids, stop, self.eos_ids, self._decode, truncated=cut[i][1])
            self._batch_done(len(idx))
        return out  # type: ignore[return-value]

    def _batch_done(self, rows: int) -> None:
        """Tell `on_batch` (set by the inference step for the progress bar) that `rows` prompts or pairs are done."""
        if self.on_batch is not None:
            self.on_batch(rows)

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[k, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def _generate_batch(self, rows: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[list[int]]:
        ids, mask = self._left_pad(rows)
        # A fresh config, so sampling or repetition penalties in the model's generation_config never apply.
        gen_cfg = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids or None,
        )
        criteria = StoppingCriteriaList([_StopOnStrings(self.tokenizer, stop, ids.shape[1])]) if stop else None
        seqs = self.model.generate(
            input_ids=ids, attention_mask=mask, generation_config=gen_cfg, stopping_criteria=criteria
        )
        return seqs[:, ids.shape[1] :].tolist()

    # --- log-likelihood -------------------------------------------------------------------------------------

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[Scored]:
        """Σ log p(continuation tokens | context), per-token log-probs and greediness, in the pairs' order.

        Pairs whose context fits whole are scored from a shared prefix cache (each
        distinct context runs once, `_score_shared`); a pair whose context had to
        be cut, or every pair when the model's cache cannot be row-selected or
        `prefix_cache` is off, gets one full forward pass over context +
        continuation (`_score_batch`).
        """
        items: list[tuple[list[int], list[int]]] = []  # (context ids as scored, continuation ids)
        unscorable: set[int] = set()
        cut: set[int] = set()
        for n, (context, continuation) in enumerate(pairs):
            ctx, cont = pair_token_ids(context, continuation, self.encode, self.tokenize, self.start_id)
            # the model reads max_length tokens and scores the one after each: a window of max_length + 1
            fit = fit_for_scoring(ctx, cont, self.max_length + 1)
            if fit is None:
                # the model cannot score it at all: the record says so (NaN) instead of failing the shard
                log.warning("a continuation of %d tokens does not fit the context length %d: scored NaN",
                            len(cont), self.max_length)
                unscorable.add(n)
                items.append(([], []))
                continue
            seq, was_cut = fit
            if was_cut:
                cut.add(n)
            items.append((seq[: len(seq) - len(cont)], cont))
        out: list[Scored | None] = [None] * len(pairs)
        todo: list[int] = []
        for n, (_, cont) in enumerate(items):
            if n in unscorable:
                out[n] = unscorable_scored()
            elif not cont:
                out[n] = empty_scored()
            else:
                todo.append(n)
        full = todo
        if self.prefix_cache and self._shared_cache_ok is not False:
            shared = [n for n in todo if n not in cut]
            try:
                for n, scored in zip(shared, self._score_shared([items[n] for n in shared]), strict=True):
                    out[n] = scored
                full = [n for n in todo if n in cut]
            except _NoSharedCache as e:
                self._shared_cache_ok = False
                log.info("%s: scoring every pair with a full forward pass (%s)", self.model.name_or_path, e)
        lengths = [(n, len(items[n][0]) + len(items[n][1]) - 1) for n in full]
        for idx in budget_batches(lengths, self.batch_size, self._token_budget()):
            for n, scored in zip(idx, self._score_batch([_as_full_row(items[n]) for n in idx]), strict=True):
                out[n] = replace(scored, truncated=n in cut)
            self._batch_done(len(idx))
        return out  # type: ignore[return-value]

    def _token_budget(self) -> int:
        """Padded tokens (rows x longest row) one scoring forward pass may hold.

        Defaults to batch_size full-length rows, the old worst case, so memory
        never exceeds what a fixed batch of batch_size rows could use; it
        follows backend.batch_size when the driver halves it after an OOM.
        """
        return self.token_budget or self.batch_size * self.max_length

    def _shared_cache_supported(self) -> bool:
        forward = inspect.signature(self.model.forward).parameters
        return self._has_position_ids and "use_cache" in forward and self._cache_arg is not None

    @torch.inference_mode()
    def _score_shared(self, items: list[tuple[list[int], list[int]]]) -> list[Scored]:
        """Each distinct context runs once; its continuations are scored from its key/value cache.

        Contexts go in length-sorted, left-padded batches with explicit
        position ids (as `_score_batch`), asking only for the last position's
        logits, which score every continuation's first token. Continuations of
        two or more tokens then feed all but their last token on a copy of
        their context's cache rows, right-padded, at the positions after their
        context. Raises `_NoSharedCache` if the model's cache is not a plain
        DynamicCache.
        """
        if not self._shared_cache_supported():
            raise _NoSharedCache("the model's forward takes no position_ids or cache")
        members: dict[tuple[int, ...], list[int]] = {}
        for k, (ctx, _) in enumerate(items):
            members.setdefault(tuple(ctx), []).append(k)
        contexts = list(members)
        out: list[Scored | None] = [None] * len(items)
        budget = self._token_budget()
        for batch in budget_batches([(j, len(c)) for j, c in enumerate(contexts)], self.batch_size, budget):
            self._score_context_batch([contexts[j] for j in batch], [members[contexts[j]] for j in batch],
                                      items, out, budget)
        return out  # type: ignore[return-value]

    def _score_context_batch(self, contexts: list[tuple[int, ...]], members: list[list[int]],
                             items: list[tuple[list[int], list[int]]], out: list[Scored | None],
                             budget: int) -> None:
        ids, mask = self._left_pad([list(c) for c in contexts])
        kwargs: dict = {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
                        "use_cache": True}
        if self._keep_logits:
            kwargs["logits_to_keep"] = 1
        result = self.model(**kwargs)
        layers = _dynamic_layers(_output_cache(result))  # type: ignore[arg-type]
        last = result.logits[:, -1, :].float()
        row_of = {k: b for b, ks in enumerate(members) for k in ks}
        order = [k for ks in members for k in ks]
        rows = torch.tensor([row_of[k] for k in order], dtype=torch.long, device=last.device)
        first = torch.tensor([items[k][1][0] for k in order], dtype=torch.long, device=last.device)
        first_lp = torch.log_softmax(last, dim=-1)[rows, first].tolist()
        first_greedy = (last.argmax(dim=-1)[rows] == first).tolist()
        rest: dict[int, tuple[list[float], bool]] = {}
        width = ids.shape[1]
        longer = [(k, width + len(items[k][1]) - 1) for k in order if len(items[k][1]) > 1]
        for chunk in budget_batches(longer, self.batch_size, budget):
            rest.update(self._score_continuations(chunk, [row_of[k] for k in chunk], items, layers, mask))
        for k, lp0, greedy0 in zip(order, first_lp, first_greedy, strict=True):
            cont = items[k][1]
            lps, greedy = rest.get(k, ([], True))
            token_lp = [lp0, *lps]
            out[k] = Scored(logprob=sum(token_lp), token_logprobs=tuple(token_lp), token_ids=tuple(cont),
                            is_greedy=bool(greedy0 and greedy))
        self._batch_done(len(order))

    def _score_continuations(self, chunk: list[int], ctx_rows: list[int], items: list[tuple[list[int], list[int]]],
                             layers: list, ctx_mask: torch.Tensor) -> dict[int, tuple[list[float], bool]]:
        """Log-probs of tokens 2.. of each continuation in `chunk`, fed on its context's cache rows."""
        sel = torch.tensor(ctx_rows, dtype=torch.long, device=ctx_mask.device)
        fed = [items[k][1][:-1] for k in chunk]
        span = max(len(f) for f in fed)
        inp = torch.full((len(chunk), span), self.pad_id, dtype=torch.long)
        target = torch.zeros((len(chunk), span), dtype=torch.long)
        cont_mask = torch.zeros((len(chunk), span), dtype=torch.long)
        for r, k in enumerate(chunk):
            c = len(items[k][1]) - 1
            inp[r, :c] = torch.tensor(items[k][1][:-1], dtype=torch.long)
            target[r, :c] = torch.tensor(items[k][1][1:], dtype=torch.long)
            cont_mask[r, :c] = 1
        inp, cont_mask = inp.to(self.device), cont_mask.to(self.device)
        ctx_mask = ctx_mask.index_select(0, sel)
        # padding positions past a short row's end are masked; clamped so a learned position table has a row for them
        pos = (ctx_mask.sum(-1, keepdim=True) + torch.arange(span, device=self.device)).clamp(max=self.max_length - 1)
        cache = DynamicCache(ddp_cache_data=[
            (layer.keys.index_select(0, sel.to(layer.keys.device)),
             layer.values.index_select(0, sel.to(layer.values.device))) for layer in layers
        ])
        logits = self.model(input_ids=inp, attention_mask=torch.cat([ctx_mask, cont_mask], dim=1), position_ids=pos,
                            use_cache=True, **{self._cache_arg: cache}).logits.float()  # type: ignore[dict-item]
        target, valid = target.to(logits.device), cont_mask.to(logits.device).bool()
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, target[..., None])[..., 0].tolist()
        greedy = ((logits.argmax(dim=-1) == target) | ~valid).all(dim=-1).tolist()
        return {k: (token_lp[r][: len(items[k][1]) - 1], bool(greedy[r])) for r, k in enumerate(chunk)}

    @torch.inference_mode()
    def _score_batch(self, items: list[tuple[list[int], list[int]]]) -> list[Scored]:
        """One forward pass, left-padded so every continuation ends at the last position.

        Left padding lets the model compute logits only for the last
        max(continuation length) positions (`logits_to_keep`), which matters for
        large vocabularies; explicit position ids keep padded rows equal to
        unpadded ones.
        """
        ids, mask = self._left_pad([inp for inp, _ in items])
        keep = max(len(cont) for _, cont in items)
        kwargs: dict = {"input_ids": ids, "attention_mask": mask}
        if self._has_position_ids:
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        if self._keep_logits:
            kwargs["logits_to_keep"] = keep
        logits = self.model(**kwargs).logits[:, -keep:, :].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        greedy = logits.argmax(dim=-1)
        results = []
        for k, (_, cont) in enumerate(items):
            c = len(cont)
            target = torch.tensor(cont, dtype=torch.long, device=logits.device)
            token_lp = logprobs[k, keep - c :, :].gather(-1, target[:, None])[:, 0]
            results.append(
                Scored(
                    logprob=float(token_lp.sum()),
                    token_logprobs=tuple(float(x) for x in token_lp.tolist()),
                    token_ids=tuple(cont),
                    is_greedy=bool((greedy[k, keep - c :] == target).all()),
                )
            )
        return results

    # --- chat and lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Drop the weights so a worker can load the next model."""
        self.model = None  # type: ignore[assignment]
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
