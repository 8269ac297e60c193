"""The vLLM backend without vLLM: its pure parts on plain inputs, and its glue against the transformers backend.

vLLM needs a CUDA GPU, so CI cannot run it. What can drift is tested here:
the engine's arguments (tensor parallelism, batch size, GPU share), which
pairs fit the context (`plan_scoring`, the rule `fit_for_scoring` shared with
transformers), how prompt log-probs become a Scored, and the end-of-sequence
ids. The last tests run `VLLMBackend` on a stand-in `vllm` module whose LLM
computes prompt log-probs and greedy tokens with the same tiny GPT-2 the
transformers backend loads: it checks this module's slicing and mapping (off by
one is the usual bug) against `TransformersBackend`, not vLLM itself.
"""

from __future__ import annotations

import math
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from orchestrator.backends import BackendError, load_backend
from orchestrator.backends.base import fit_for_scoring, merge_eos_ids
from orchestrator.backends.vllm_backend import (
    PREFIX_CACHING,
    SCORING_PARAMS,
    generation_params,
    llm_kwargs,
    plan_scoring,
    scored_from_prompt_logprobs,
    scoring_window,
)
from orchestrator.config import BackendConfig, ModelFamily, ModelSize

SIZE = ModelSize(path="~/models/m", params=1, revision="abc")
FAMILY = ModelFamily(family="f", dtype="bfloat16")


# --- engine arguments -----------------------------------------------------------------------------------------


def test_llm_kwargs_one_gpu_has_no_tensor_parallelism_and_honours_batch_size_and_max_length():
    kw = llm_kwargs(SIZE, FAMILY, BackendConfig(name="vllm", batch_size=16, max_length=512), gpus=1)
    assert "tensor_parallel_size" not in kw and "gpu_memory_utilization" not in kw
    assert kw["max_num_seqs"] == 16 and kw["max_model_len"] == 512
    assert kw["load_format"] == "safetensors" and kw["trust_remote_code"] is False
    assert kw["dtype"] == "bfloat16" and kw["revision"] == kw["tokenizer_revision"] == "abc"
    assert not kw["model"].startswith("~") and kw["tokenizer"] == kw["model"]
    assert kw["enable_prefix_caching"] is PREFIX_CACHING
    assert "max_model_len" not in llm_kwargs(SIZE, FAMILY, BackendConfig(name="vllm"), gpus=0)


@pytest.mark.parametrize("gpus", [2, 4, 8])
def test_llm_kwargs_spreads_k_gpus_with_tensor_parallelism(gpus):
    assert llm_kwargs(SIZE, FAMILY, BackendConfig(name="vllm"), gpus=gpus)["tensor_parallel_size"] == gpus


def test_llm_kwargs_a_gpu_share_claims_only_that_share_of_memory():
    kw = llm_kwargs(SIZE, FAMILY, BackendConfig(name="vllm"), gpus=1, gpu_share=0.375)
    assert kw["gpu_memory_utilization"] == 0.375
    assert "gpu_memory_utilization" not in llm_kwargs(SIZE, FAMILY, BackendConfig(name="vllm"), gpus=1, gpu_share=1)
    for bad in (0, -0.5, float("nan")):
        with pytest.raises(BackendError, match="gpu_share"):
            llm_kwargs(SIZE, FAMILY, BackendConfig(name="vllm"), gpus=1, gpu_share=bad)


def test_generation_params_are_greedy_without_penalties_and_stop_at_the_eos_ids():
    p = generation_params(7, ["\n", "Q:"], [0, 2, 9], tokenizer_eos=2)
    assert p["temperature"] == 0.0 and p["max_tokens"] == 7
    assert p["stop"] == ["\n", "Q:"] and p["stop_token_ids"] == [0, 9]  # vLLM ends at the tokenizer's EOS itself
    assert set(p) == {"temperature", "max_tokens", "stop", "stop_token_ids"}  # no sampling knobs beyond greedy
    plain = generation_params(3, [], [2], tokenizer_eos=2)
    assert plain == {"temperature": 0.0, "max_tokens": 3, "stop": None}
    assert SCORING_PARAMS["prompt_logprobs"] == 1 and SCORING_PARAMS["max_tokens"] == 1


# --- end of sequence --------------------------------------------------------------------------------------------


def test_merge_eos_ids_unites_generation_config_and_tokenizer_within_the_vocab():
    assert merge_eos_ids(2, 2, 100) == [2]
    assert merge_eos_ids([128001, 128009], 128001, 128256) == [128001, 128009]  # a chat model lists several
    assert merge_eos_ids(None, 0, 10) == [0]
    assert merge_eos_ids([5, 50], None, 10) == [5]  # an id the head cannot produce is dropped
    assert merge_eos_ids(None, None, 10) == []
    assert merge_eos_ids(7, None, None) == [7]


# --- what fits the context ----------------------------------------------------------------------------------------


def test_plan_scoring_fits_cuts_and_refuses_like_the_shared_rule():
    L = 10  # vLLM: prompt + 1 generated token <= 10, so 9 prompt tokens, the first of which is not scored
    assert scoring_window(L) == 9
    ctx, cont = [1, 2, 3], [4, 5]
    plan = plan_scoring([(ctx, cont), (list(range(20)), [7, 8]), ([1], list(range(8))), ([1], list(range(9))),
                         ([1, 2], [])], L)
    assert plan[0] == ([1, 2, 3, 4, 5], [4, 5], False)
    ids, c, cut = plan[1]
    assert ids == list(range(13, 20)) + [7, 8] and len(ids) == 9 and cut and c == [7, 8]
    assert plan[2] == ([1, *range(8)], list(range(8)), False)  # 8 continuation tokens: the most that fit
    assert plan[3] is None  # 9: none left to predict the first from -> NaN
    assert plan[4] == ([1, 2], [], False)  # empty continuation: scored 0 without asking vLLM
    # the same rule as transformers, whose window is max_length + 1 (it reads max_length and scores the next)
    assert fit_for_scoring([1], list(range(10)), L + 1) is not None and fit_for_scoring([1], list(range(11)),
                                                                                         L + 1) is None


# --- prompt log-probs to Scored ----------------------------------------------------------------------------------


def lp(logprob: float, rank: int) -> SimpleNamespace:
    return SimpleNamespace(logprob=logprob, rank=rank, decoded_token=None)


def test_scored_from_prompt_logprobs_takes_the_last_tokens_and_their_ranks():
    prompt_lps = [None, {11: lp(-1.0, 3)}, {12: lp(-0.5, 1), 99: lp(-0.4, 1)}, {13: lp(-0.25, 1)}]
    s = scored_from_prompt_logprobs(prompt_lps, 4, [12, 13], truncated=True)
    assert s.token_logprobs == (-0.5, -0.25) and s.logprob == -0.75 and s.token_ids == (12, 13)
    assert s.is_greedy and s.truncated
    s2 = scored_from_prompt_logprobs(prompt_lps, 4, [11, 12, 13])
    assert s2.logprob == -1.75 and not s2.is_greedy and not s2.truncated  # 11 was the third choice


def test_scored_from_prompt_logprobs_refuses_what_does_not_line_up():
    prompt_lps = [None, {11: lp(-1.0, 1)}]
    with pytest.raises(BackendError):
        scored_from_prompt_logprobs(prompt_lps, 2, [5, 11])  # the first prompt token has no log-prob
    with pytest.raises(BackendError):
        scored_from_prompt_logprobs(prompt_lps, 3, [11])  # vLLM returned fewer entries than the prompt has
    with pytest.raises(BackendError, match="no log-prob for prompt token 12"):
        scored_from_prompt_logprobs(prompt_lps, 2, [12])


# --- the backend's glue, against the transformers backend -----------------------------------------------------------


class _FakeLLM:
    """Stands in for `vllm.LLM`: the same tiny GPT-2, greedy tokens and prompt log-probs with vLLM's shapes."""

    last_kwargs: dict = {}
    calls: list = []

    def __init__(self, **kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        type(self).last_kwargs = kwargs
        type(self).calls = []
        self.model = AutoModelForCausalLM.from_pretrained(kwargs["model"]).eval()
        self.tok = AutoTokenizer.from_pretrained(kwargs["tokenizer"])
        cfg = self.model.config
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(
            max_model_len=kwargs.get("max_model_len") or cfg.n_positions, hf_config=cfg,
            get_vocab_size=lambda: cfg.vocab_size))
        self.max_model_len = self.llm_engine.model_config.max_model_len

    def get_tokenizer(self):
        return self.tok

    @torch.no_grad()
    def generate(self, prompts, params, use_tqdm=False):
        type(self).calls.append(len(prompts))
        outs = []
        for p in prompts:
            ids = list(p["prompt_token_ids"])
            assert len(ids) + params.max_tokens <= self.max_model_len, "vLLM refuses prompt + max_tokens > max len"
            if params.prompt_logprobs:
                logits = self.model(torch.tensor([ids])).logits[0].float()
                lps = torch.log_softmax(logits, -1)
                entries = [None]
                for k in range(1, len(ids)):
                    row, t = lps[k - 1], ids[k]
                    entries.append({t: lp(float(row[t]), int((row > row[t]).sum()) + 1)})
                outs.append(SimpleNamespace(prompt_logprobs=entries, outputs=[]))
                continue
            gen: list[int] = []
            stop_ids = set(params.stop_token_ids or []) | {self.tok.eos_token_id}  # vLLM: always the tokenizer's
            for _ in range(params.max_tokens):
                nxt = int(self.model(torch.tensor([ids + gen])).logits[0, -1].argmax())
                gen.append(nxt)
                text = self.tok.decode(gen, skip_special_tokens=True)
                if nxt in stop_ids or any(s in text for s in (params.stop or [])):
                    break
            outs.append(SimpleNamespace(prompt_logprobs=None, outputs=[SimpleNamespace(token_ids=gen)]))
        return outs


@pytest.fixture()
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = _FakeLLM
    mod.SamplingParams = lambda **kw: SimpleNamespace(**{"stop": None, "stop_token_ids": None,
                                                         "prompt_logprobs": None, **kw})
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from orchestrator.zoo.tokenizer import build_tokenizer
    from tests.test_backend import _tiny_model

    path = tmp_path_factory.mktemp("tiny_gpt2_vllm")
    tok = build_tokenizer()
    _tiny_model(tok).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def _both(tiny_dir, **cfg):
    size, family = ModelSize(path=str(tiny_dir), params=1), ModelFamily(family="tiny")
    hf = load_backend(size, family, BackendConfig(name="transformers", batch_size=3, **cfg), threads=1)
    vl = load_backend(size, family, BackendConfig(name="vllm", batch_size=3, **cfg), gpus=2)
    return hf, vl


def test_vllm_glue_scores_as_transformers_and_nan_past_its_window(fake_vllm, tiny_dir):
    hf, vl = _both(tiny_dir, max_length=40)
    assert _FakeLLM.last_kwargs["tensor_parallel_size"] == 2 and _FakeLLM.last_kwargs["max_num_seqs"] == 3
    assert vl.max_length == hf.max_length == 40
    assert vl.eos_ids == hf.eos_ids and vl.start_id == hf.start_id
    pairs = [("12+34=", "46"), ("hello ", "world"), ("", "abc"), ("x" * 60, "yz"), ("a", ""), ("q", "r" * 38),
             ("q", "r" * 39)]
    a, b = hf.loglikelihood(pairs), vl.loglikelihood(pairs)
    assert _FakeLLM.calls == [5]  # every scorable pair in one call
    for n in (0, 1, 2, 4):
        assert b[n].token_ids == a[n].token_ids and b[n].is_greedy == a[n].is_greedy
        assert b[n].logprob == pytest.approx(a[n].logprob, abs=1e-4)
        assert b[n].token_logprobs == pytest.approx(a[n].token_logprobs, abs=1e-4)
    assert [s.truncated for s in b[:5]] == [s.truncated for s in a[:5]] == [False, False, False, True, False]
    # a cut context keeps 2 tokens fewer in vLLM (it must generate one): same continuation, shorter context
    assert b[3].token_ids == a[3].token_ids and len(b[3].token_logprobs) == 2
    assert b[4].logprob == 0.0 and b[4].is_greedy
    # 38 continuation tokens fill vLLM's 39-token window exactly; 39 do not (transformers, reading 40, still can)
    assert not math.isnan(b[5].logprob) and b[5].logprob == pytest.approx(a[5].logprob, abs=1e-3)
    assert math.isnan(b[6].logprob) and b[6].truncated and b[6].token_ids == ()
    assert not math.isnan(a[6].logprob)


def test_vllm_glue_generates_as_transformers(fake_vllm, tiny_dir):
    hf, vl = _both(tiny_dir, max_length=30)
    prompts = ["12+34=", "hello world, how are you? " * 3, "x"]
    for stop in ([], ["e", "1"]):
        a = hf.generate(prompts, max_new_tokens=6, stop=stop)
        b = vl.generate(prompts, max_new_tokens=6, stop=stop)
        assert [(g.text, g.token_ids, g.truncated) for g in b] == [(g.text, g.token_ids, g.truncated) for g in a]
    assert [g.truncated for g in b] == [False, True, False]
