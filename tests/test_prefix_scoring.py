"""Shared-prefix scoring (each context runs once, continuations read its key/value cache) against the full pass.

The reference is the same backend with `prefix_cache = False`: one forward pass over context +
continuation per pair, the code every record was scored with before. Models: the zoo's trained
zoo-30k (built once if missing, as the walkthrough does), a random GPT-2 with a short context (so
truncation is easy to reach) and a random Llama (rotary positions: explicit position ids must be right).
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from orchestrator.backends import load_backend
from orchestrator.backends.hf import budget_batches
from orchestrator.config import BackendConfig, ModelFamily, ModelSize
from orchestrator.record import Scored
from orchestrator.zoo.tokenizer import build_tokenizer

TOL = 1e-4
N_POSITIONS = 48


def _save(model, path) -> str:
    tok = build_tokenizer()
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


def _random_gpt2(path) -> str:
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=N_POSITIONS, vocab_size=len(tok),
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     initializer_range=0.5)  # peaked logits: greedy choices are far from ties
    return _save(GPT2LMHeadModel(cfg).eval(), path)


def _random_llama(path) -> str:
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=N_POSITIONS,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      initializer_range=0.5)
    return _save(LlamaForCausalLM(cfg).eval(), path)


@pytest.fixture(scope="module")
def zoo_30k() -> str:
    from orchestrator import zoo

    if not zoo.is_built(names=["zoo-30k"]):  # CI has no zoo: train it once, as the walkthrough does
        zoo.build(names=["zoo-30k"], progress=False)
    return str(zoo.zoo_dir() / "zoo-30k")


@pytest.fixture(scope="module", params=["zoo-30k", "gpt2", "llama"])
def backend(request, tmp_path_factory):
    if request.param == "zoo-30k":
        path = request.getfixturevalue("zoo_30k")
    elif request.param == "gpt2":
        path = _random_gpt2(tmp_path_factory.mktemp("gpt2"))
    else:
        path = _random_llama(tmp_path_factory.mktemp("llama"))
    b = load_backend(ModelSize(path=path, params=1), ModelFamily(family=request.param),
                     BackendConfig(batch_size=32), threads=1)
    yield b
    b.close()


@pytest.fixture()
def fresh(backend):
    """The module's backend with its settings restored after each test."""
    saved = backend.batch_size, backend.token_budget
    yield backend
    backend.batch_size, backend.token_budget = saved
    backend.prefix_cache = True


def _both(backend, pairs: list[tuple[str, str]]) -> tuple[list[Scored], list[Scored]]:
    backend.prefix_cache = False
    old = backend.loglikelihood(pairs)
    backend.prefix_cache = True
    new = backend.loglikelihood(pairs)
    assert backend._shared_cache_ok is not False  # the new path ran, it did not fall back
    return old, new


def _assert_same(old: list[Scored], new: list[Scored]) -> None:
    assert len(old) == len(new)
    for n, (o, s) in enumerate(zip(old, new, strict=True)):
        assert s.token_ids == o.token_ids, n
        assert s.is_greedy == o.is_greedy, n
        assert s.truncated == o.truncated, n
        assert len(s.token_logprobs) == len(o.token_logprobs), n
        for a, b in zip(o.token_logprobs, s.token_logprobs, strict=True):
            assert abs(a - b) <= TOL, (n, a, b)
        if math.isnan(o.logprob):
            assert math.isnan(s.logprob), n
        else:
            assert abs(s.logprob - o.logprob) <= TOL * max(1, len(o.token_ids)), n


def _addition_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        pairs.append((f"{a}+{b}=", str(a + b)))
        pairs.extend((f"{a}+{b}=", str(a + b + d)) for d in (-100, -10, 1, 10))
    return pairs


def _mc_pairs(backend) -> list[tuple[str, str]]:
    """3-shot prompts with 4 options each, as long as the model's context allows."""
    rng = random.Random(1)
    pairs = []
    for _ in range(4):
        shots = "".join(f"{a}+{b}={a + b}\n" for a, b in ((rng.randint(1, 9), rng.randint(1, 9)) for _ in range(3)))
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = shots + f"{a}+{b}="
        assert len(prompt) + 4 < backend.max_length
        pairs.extend((prompt, str(o)) for o in (a + b, a + b + 1, a + b - 10, a + b + 11))
    return pairs


def test_many_continuations_of_mixed_lengths_per_context(fresh):
    pairs = [(ctx, cont) for ctx in ("12+34=", "The cat sat on the ", "7*8=")
             for cont in ("4", "46", "mat.", "a longer continuation", "56", "x")]
    _assert_same(*_both(fresh, pairs))


def test_addition_target_and_four_options(fresh):
    _assert_same(*_both(fresh, _addition_pairs(12)))


def test_k_shot_multiple_choice_with_four_options(fresh):
    _assert_same(*_both(fresh, _mc_pairs(fresh)))


def test_empty_cut_and_unscorable_continuations_keep_their_flags(fresh):
    long_context = "1234567890" * 8  # longer than every model's context: cut, scored the full-pass way
    pairs = [
        ("12+34=", ""),  # empty: probability one
        (long_context, "46"),  # the context loses its first tokens: truncated
        (long_context, ""),
        ("12+34=", "9" * (fresh.max_length + 5)),  # cannot fit at all: NaN
        ("", "hello"),  # empty context: starts from BOS/EOS
        ("12+34= ", "46"),  # trailing whitespace moves to the continuation
        ("12+34=", "46"),
        ("12+34=", "46"),  # a duplicate pair scores like its twin
    ]
    old, new = _both(fresh, pairs)
    _assert_same(old, new)
    assert new[0].logprob == 0.0 and new[0].is_greedy and not new[0].truncated
    assert new[1].truncated and not math.isnan(new[1].logprob)
    assert math.isnan(new[3].logprob) and new[3].truncated
    assert not new[4].truncated and len(new[4].token_ids) == 5
    assert new[6] == new[7]


def test_a_continuation_that_fills_the_context_exactly(fresh):
    """Context + continuation = max_length + 1 tokens: the last position the model has, nothing cut."""
    cont = "7" * (fresh.max_length - 3)
    ctx = "1+"  # BOS is not added by the zoo tokenizer; the fit rule decides either way
    old, new = _both(fresh, [(ctx, cont), (ctx, cont[:-1]), (ctx, "7")])
    _assert_same(old, new)


def test_batch_size_smaller_than_the_pairs_is_honoured(fresh):
    """Every forward pass has at most batch_size rows, as after the driver halves it on OOM."""
    rows: list[int] = []
    handle = fresh.model.register_forward_pre_hook(
        lambda _m, args, kwargs: rows.append((kwargs.get("input_ids", args[0] if args else None)).shape[0]),
        with_kwargs=True,
    )
    try:
        fresh.batch_size = 32
        pairs = _addition_pairs(6) + _mc_pairs(fresh)
        reference, _ = _both(fresh, pairs)
        for size in (3, 1):
            rows.clear()
            fresh.batch_size = size
            old, new = _both(fresh, pairs)
            _assert_same(reference, new)
            _assert_same(old, new)
            assert rows and max(rows) <= size
    finally:
        handle.remove()


def test_a_small_token_budget_gives_the_same_scores_in_more_passes(fresh):
    pairs = _addition_pairs(8) + _mc_pairs(fresh)
    reference, _ = _both(fresh, pairs)
    fresh.token_budget = 40  # about one context per pass
    old, new = _both(fresh, pairs)
    _assert_same(reference, new)
    _assert_same(old, new)


def test_each_distinct_context_runs_once(fresh):
    """The k-shot context is read once for its 4 options: far fewer tokens through the model than the full pass."""
    fed: list[tuple[int, int]] = []
    handle = fresh.model.register_forward_pre_hook(
        lambda _m, args, kwargs: fed.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        pairs = _mc_pairs(fresh)
        contexts = len({p for p, _ in pairs})
        fresh.prefix_cache = True
        fresh.loglikelihood(pairs)
        shared = list(fed)
        fed.clear()
        fresh.prefix_cache = False
        fresh.loglikelihood(pairs)
    finally:
        handle.remove()
    assert shared[0][0] == contexts  # one row per distinct context, not per pair
    assert fed[0][0] == len(pairs)
    assert sum(r * w for r, w in shared) < sum(r * w for r, w in fed) / 2


def test_prefix_cache_off_in_the_constructor(zoo_30k):
    b = load_backend(ModelSize(path=zoo_30k, params=1), ModelFamily(family="zoo"), BackendConfig(batch_size=4),
                     threads=1)
    try:
        assert b.prefix_cache
    finally:
        b.close()
    from orchestrator.backends.hf import TransformersBackend

    off = TransformersBackend(ModelSize(path=zoo_30k, params=1), ModelFamily(family="zoo"),
                              BackendConfig(batch_size=4), threads=1, prefix_cache=False)
    try:
        assert not off.prefix_cache
        assert off.loglikelihood([("1+1=", "2")])[0].token_ids
    finally:
        off.close()


def test_a_sliding_window_cache_falls_back_to_the_full_pass(tmp_path):
    """Mistral's sliding-window layers keep state a row copy would not carry: scored the old way, same numbers."""
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = MistralConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=64, sliding_window=8,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    path = _save(MistralForCausalLM(cfg).eval(), tmp_path / "mistral")
    b = load_backend(ModelSize(path=path, params=1), ModelFamily(family="mistral"), BackendConfig(batch_size=4),
                     threads=1)
    try:
        pairs = _addition_pairs(3)
        b.prefix_cache = False
        old = b.loglikelihood(pairs)
        b.prefix_cache = True
        new = b.loglikelihood(pairs)
        assert b._shared_cache_ok is False
        assert new == old
    finally:
        b.close()


def test_budget_batches_caps_rows_and_padded_tokens():
    lengths = [(0, 5), (1, 9), (2, 3), (3, 9), (4, 1)]
    assert budget_batches(lengths, max_rows=10, budget=100) == [[1, 3, 0, 2, 4]]  # longest first, ties in order
    assert budget_batches(lengths, max_rows=2, budget=100) == [[1, 3], [0, 2], [4]]
    assert budget_batches(lengths, max_rows=10, budget=18) == [[1, 3], [0, 2, 4]]  # 2 x 9 and 3 x 5 tokens
    assert budget_batches(lengths, max_rows=10, budget=4) == [[1], [3], [0], [2], [4]]  # too long: alone
    assert budget_batches([], max_rows=3, budget=10) == []
