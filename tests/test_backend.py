"""The transformers backend against a tiny random GPT-2 with the zoo's character tokenizer.

Every expectation is computed independently: one-at-a-time generation, the
model's own logits, plain string operations on an uncut generation.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from orchestrator.backends import Backend, BackendError, load_backend
from orchestrator.backends import hf as hf_module
from orchestrator.backends.base import covering_prefix, cut_at_stop, finish_generation, move_trailing_whitespace
from orchestrator.config import BackendConfig, ModelFamily, ModelSize
from orchestrator.zoo.tokenizer import build_tokenizer

N_POSITIONS = 96
PROMPTS = ["12+34=", "hello world, how are you?", "x", "The cat sat on the mat and", "7*8="]


def _tiny_model(tok) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=N_POSITIONS,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.5,  # peaked logits: greedy choices are far from ties
    )
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # special tokens get logit 0, below the best character's: greedy text is plain text
        model.transformer.wte.weight[tok.all_special_ids] = 0.0
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_gpt2")
    tok = build_tokenizer()
    _tiny_model(tok).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def _load(path, **cfg) -> Backend:
    cfg.setdefault("batch_size", 3)
    return load_backend(
        ModelSize(path=str(path), params=1), ModelFamily(family="tiny"), BackendConfig(**cfg), threads=1
    )


@pytest.fixture(scope="module")
def backend(model_dir):
    b = _load(model_dir)
    yield b
    b.close()


def _manual_scores(backend, ctx_ids: list[int], cont_ids: list[int]) -> list[float]:
    """log p of each continuation token from one unpadded forward pass."""
    ids = (ctx_ids + cont_ids)[-(backend.max_length + 1) :]
    with torch.no_grad():
        logits = backend.model(torch.tensor([ids[:-1]])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    n = len(ids) - 1
    return [float(lp[n - len(cont_ids) + k, t]) for k, t in enumerate(cont_ids)]


# --- loading --------------------------------------------------------------------------------------------------


def test_loads_as_a_backend_with_the_models_context_length(backend, model_dir):
    assert isinstance(backend, Backend)
    assert backend.name == "transformers"
    assert backend.max_length == N_POSITIONS
    assert _load(model_dir, max_length=40).max_length == 40
    assert backend.encode("ab") == build_tokenizer()("ab")["input_ids"]
    assert backend.count_tokens("hello") == 5


def test_pickle_checkpoint_is_refused(tmp_path, model_dir):
    bad = tmp_path / "bin_only"
    bad.mkdir()
    for f in model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, bad / f.name)
    torch.save(_tiny_model(build_tokenizer()).state_dict(), bad / "pytorch_model.bin")
    with pytest.raises(BackendError, match="no safetensors weights"):
        _load(bad)


def test_remote_code_is_off_by_default(tmp_path, model_dir, monkeypatch):
    # 1. the loaders are asked for safetensors and no remote code
    seen = []
    for cls in (hf_module.AutoTokenizer, hf_module.AutoModelForCausalLM):
        real = cls.from_pretrained

        def spy(*args, _real=real, _name=cls.__name__, **kwargs):
            seen.append((_name, kwargs))
            return _real(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    _load(model_dir)
    assert [name for name, _ in seen] == ["AutoTokenizer", "AutoModelForCausalLM"]
    assert all(kw["trust_remote_code"] is False for _, kw in seen)
    assert seen[1][1]["use_safetensors"] is True
    monkeypatch.undo()

    # 2. a checkpoint whose config needs custom code is refused, and its code never runs
    evil = tmp_path / "evil"
    shutil.copytree(model_dir, evil)
    marker = tmp_path / "code_ran"
    (evil / "evil_code.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((evil / "config.json").read_text())
    config["model_type"] = "evil_gpt"
    config["auto_map"] = {"AutoConfig": "evil_code.EvilConfig", "AutoModelForCausalLM": "evil_code.EvilModel"}
    (evil / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="trust_remote_code"):
        _load(evil)
    assert not marker.exists()


def test_vllm_missing_gives_a_clear_error(monkeypatch, model_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(BackendError, match=r"backend.name=vllm.*not installed.*pip install"):
        _load(model_dir, name="vllm")
    with pytest.raises(BackendError, match="unknown"):
        _load(model_dir, name="tgi")


def test_chat_uses_the_template_or_says_there_is_none(backend, monkeypatch):
    with pytest.raises(BackendError, match="no chat template"):
        backend.chat("hi")
    template = (
        "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    )
    monkeypatch.setattr(backend.tokenizer, "chat_template", template)
    assert backend.chat("hi") == "[user:hi]A:"


# --- generation -----------------------------------------------------------------------------------------------


def test_batched_generation_equals_one_at_a_time(backend):
    assert len({len(p) for p in PROMPTS}) > 1  # rows of a batch get different amounts of left padding
    batched = backend.generate(PROMPTS, max_new_tokens=12, stop=[])
    single = [backend.generate([p], max_new_tokens=12, stop=[])[0] for p in PROMPTS]
    assert batched == single
    for g in batched:
        assert len(g.token_ids) == 12
        assert backend.tokenizer.decode(list(g.token_ids)) == g.text


def test_stop_strings_cut_at_the_earliest_stop(backend):
    full = backend.generate(PROMPTS, max_new_tokens=20, stop=[])
    # stops taken from the uncut generations: a single character and a two-character string
    stop = [full[0].text[5], full[1].text[3:5]]
    cut = backend.generate(PROMPTS, max_new_tokens=20, stop=stop)
    n_cut = 0
    for f, c in zip(full, cut, strict=True):
        hits = [i for i in (f.text.find(s) for s in stop) if i >= 0]
        expected = f.text[: min(hits)] if hits else f.text
        n_cut += bool(hits)
        assert c.text == expected
        assert backend.tokenizer.decode(list(c.token_ids)) == c.text
        assert c.token_ids == f.token_ids[: len(c.token_ids)]
    assert n_cut >= 2


def test_generation_stops_early_when_every_row_has_stopped(backend):
    full = backend.generate(PROMPTS, max_new_tokens=5, stop=[])
    stop = sorted({g.text[1] for g in full})  # every row hits a stop by its second token
    calls = []
    handle = backend.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = backend.generate(PROMPTS, max_new_tokens=60, stop=stop)
    finally:
        handle.remove()
    assert all(len(g.text) <= 1 for g in out)
    n_batches = -(-len(PROMPTS) // backend.batch_size)
    assert len(calls) <= 3 * n_batches  # not 60 decoding steps per batch


def test_long_prompt_is_left_truncated_with_a_warning_and_flagged(backend, caplog):
    long_prompt = "0123456789" * 12  # 120 characters > 96 - 8
    with caplog.at_level(logging.WARNING):
        got, short = backend.generate([long_prompt, "12+34="], max_new_tokens=8, stop=[])
    assert "exceeds" in caplog.text
    kept = backend.generate([long_prompt[-(N_POSITIONS - 8) :]], max_new_tokens=8, stop=[])[0]
    assert (got.text, got.token_ids) == (kept.text, kept.token_ids)
    assert got.truncated and not kept.truncated and not short.truncated


# --- log-likelihood -------------------------------------------------------------------------------------------


PAIRS = [
    ("12+34=", "46"),
    ("hello world, how are", " you?"),
    ("x", "yz"),
    ("The cat sat on the mat and then it", " slept all day long"),
    ("Q: 7*8?\nA: ", "56"),  # trailing whitespace moves onto the continuation
]


def test_loglikelihood_matches_the_models_logits(backend):
    tok = backend.tokenizer
    batched = backend.loglikelihood(PAIRS)
    for (ctx, cont), s in zip(PAIRS, batched, strict=True):
        ctx2, cont2 = move_trailing_whitespace(ctx, cont)
        cont_ids = tok(cont2)["input_ids"]
        assert list(s.token_ids) == cont_ids
        expected = _manual_scores(backend, tok(ctx2)["input_ids"], cont_ids)
        assert s.token_logprobs == pytest.approx(expected, abs=1e-4)
        assert s.logprob == pytest.approx(sum(expected), abs=1e-4)
    assert list(batched[4].token_ids) == tok(" 56")["input_ids"]


def test_loglikelihood_batched_equals_unbatched(backend):
    batched = backend.loglikelihood(PAIRS)
    for pair, b in zip(PAIRS, batched, strict=True):
        (s,) = backend.loglikelihood([pair])
        assert s.token_ids == b.token_ids
        assert s.is_greedy == b.is_greedy
        assert s.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)


def test_loglikelihood_truncates_long_contexts_from_the_left(backend):
    tok = backend.tokenizer
    ctx, cont = "abcdefghij" * 15, "klm"
    s, fits = backend.loglikelihood([(ctx, cont), (ctx[-(N_POSITIONS + 1 - 3) :], cont)])
    assert s.token_logprobs == pytest.approx(
        _manual_scores(backend, tok(ctx)["input_ids"], tok(cont)["input_ids"]), abs=1e-4
    )
    assert s.truncated and not fits.truncated  # 94 + 3 tokens: the model reads 96, all it needs


def test_is_greedy_for_the_models_own_continuation(backend):
    ctx = "12+34="
    gen = backend.generate([ctx], max_new_tokens=6, stop=[])[0]
    assert backend.tokenizer(gen.text)["input_ids"] == list(gen.token_ids)  # no special tokens in the way
    wrong = gen.text[:-1] + ("a" if gen.text[-1] != "a" else "b")
    greedy, not_greedy = backend.loglikelihood([(ctx, gen.text), (ctx, wrong)])
    assert greedy.is_greedy
    assert not not_greedy.is_greedy
    assert greedy.logprob > not_greedy.logprob


def test_empty_continuation_scores_zero(backend):
    (s,) = backend.loglikelihood([("abc", "")])
    assert (s.logprob, s.token_ids, s.is_greedy) == (0.0, (), True)


# --- the shared rules -----------------------------------------------------------------------------------------


def test_cut_and_token_boundary_rules():
    assert cut_at_stop("ab\ncd###", ["###", "\n"]) == ("ab", True)
    assert cut_at_stop("abc", ["x", ""]) == ("abc", False)
    # a tokenizer whose tokens are several characters: "ab", "c\n", "de"
    pieces = {1: "ab", 2: "c\n", 3: "de", 9: "<eos>"}

    def decode(ids):
        return "".join(pieces[i] for i in ids if i != 9)

    # the stop begins inside token 2, which is kept: it produced the "c"
    assert covering_prefix([1, 2, 3], "abc", decode) == [1, 2]
    assert covering_prefix([1, 2, 3], "ab", decode) == [1]
    assert covering_prefix([1, 2, 3], "", decode) == []
    g = finish_generation([1, 3, 9, 2], ["\n"], [9], decode)
    assert (g.text, g.token_ids) == ("abde", (1, 3))  # ended at eos before the stop
    assert move_trailing_whitespace("A: \n", "x") == ("A:", " \nx")
    assert move_trailing_whitespace("A:", " x") == ("A:", " x")


# --- the vLLM backend's bookkeeping, against a stand-in for vllm ------------------------------------------------


class _FakeVLLM:
    """Just enough of vllm's LLM/SamplingParams API, computed with transformers, to check VLLMBackend's indexing.

    Like vLLM it returns generated ids up to the token that completes a stop
    string, and prompt_logprobs as [None, {token: Logprob(logprob, rank)}, ...].
    """

    def __init__(self, model_dir):
        from types import ModuleType, SimpleNamespace

        from transformers import AutoTokenizer

        self.module = ModuleType("vllm")
        self.kwargs: dict = {}
        fake = self

        class SamplingParams:
            def __init__(self, temperature, max_tokens, stop=None, prompt_logprobs=None):
                self.max_tokens, self.stop, self.prompt_logprobs = max_tokens, stop or [], prompt_logprobs

        class LLM:
            def __init__(self, **kwargs):
                fake.kwargs = kwargs
                self.tok = AutoTokenizer.from_pretrained(kwargs["tokenizer"])
                self.model = GPT2LMHeadModel.from_pretrained(kwargs["model"]).eval()
                self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=N_POSITIONS))

            def get_tokenizer(self):
                return self.tok

            @torch.no_grad()
            def generate(self, inputs, params, use_tqdm=True):
                outs = []
                for inp in inputs:
                    ids = list(inp["prompt_token_ids"])
                    if params.prompt_logprobs is not None:
                        lp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0], -1)
                        entries = [None] + [
                            {
                                t: SimpleNamespace(
                                    logprob=float(lp[i - 1, t]), rank=int((lp[i - 1] > lp[i - 1, t]).sum()) + 1
                                )
                            }
                            for i, t in enumerate(ids)
                            if i > 0
                        ]
                        outs.append(SimpleNamespace(prompt_logprobs=entries, outputs=[SimpleNamespace(token_ids=[0])]))
                        continue
                    new: list[int] = []
                    while len(new) < params.max_tokens:
                        new.append(int(self.model(torch.tensor([ids + new])).logits[0, -1].argmax()))
                        if any(s in self.tok.decode(new) for s in params.stop):
                            break
                    outs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=new)]))
                return outs

        self.module.LLM, self.module.SamplingParams = LLM, SamplingParams


def test_vllm_backend_agrees_with_transformers(backend, model_dir, monkeypatch):
    fake = _FakeVLLM(model_dir)
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    v = _load(model_dir, name="vllm")
    assert v.name == "vllm" and v.max_length == N_POSITIONS
    assert fake.kwargs["load_format"] == "safetensors" and fake.kwargs["trust_remote_code"] is False
    full = backend.generate(PROMPTS, max_new_tokens=10, stop=[])
    stop = [full[0].text[4], full[2].text[2:4]]
    assert v.generate(PROMPTS, max_new_tokens=10, stop=stop) == backend.generate(PROMPTS, max_new_tokens=10, stop=stop)
    pairs = [*PAIRS, ("12+34=", backend.generate(["12+34="], max_new_tokens=4, stop=[])[0].text)]
    scored = backend.loglikelihood(pairs)
    assert scored[-1].is_greedy
    for a, b in zip(v.loglikelihood(pairs), scored, strict=True):
        assert (a.token_ids, a.is_greedy) == (b.token_ids, b.is_greedy)
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
        assert not a.truncated
    long_prompt = "0123456789" * 12
    assert v.generate([long_prompt], max_new_tokens=8, stop=[])[0].truncated
    cut, too_long = v.loglikelihood([("abcdefghij" * 15, "klm"), ("1+1=", "9" * N_POSITIONS)])
    assert cut.truncated and math.isfinite(cut.logprob)
    assert too_long.truncated and math.isnan(too_long.logprob)  # NaN, not a failed shard


def test_a_continuation_longer_than_the_context_scores_nan_not_an_error(model_dir):
    backend = _load(model_dir, max_length=16)
    too_long, fits = backend.loglikelihood([("1+1=", "9" * 40), ("1+1=", "2")])
    assert math.isnan(too_long.logprob) and too_long.token_ids == ()
    assert math.isfinite(fits.logprob) and len(fits.token_ids) == 1
    assert too_long.truncated and not fits.truncated


def test_a_context_longer_than_the_model_positions_is_refused_at_load(model_dir):
    """A learned position table has N_POSITIONS rows: a longer backend.max_length failed shards with IndexError."""
    with pytest.raises(BackendError, match=rf"backend.max_length={N_POSITIONS + 1} exceeds the {N_POSITIONS} "):
        _load(model_dir, max_length=N_POSITIONS + 1)
    assert _load(model_dir, max_length=N_POSITIONS).max_length == N_POSITIONS


# --- one model over several GPUs (accelerate's device_map) ----------------------------------------------------


def test_hf_load_kwargs_spreads_k_gpus_only_on_cuda():
    from orchestrator.backends.hf import gpu_weight_budget, hf_load_kwargs
    from orchestrator.placement import GB

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    eight = [24 * GB] * 8
    for device, gpus in ((cpu, 0), (cpu, 4), (cuda, 0), (cuda, 1)):  # as before: the dtype, then .to(device)
        assert hf_load_kwargs(device, torch.bfloat16, gpus, eight) == {"dtype": torch.bfloat16}
    kw = hf_load_kwargs(cuda, torch.float32, 3, eight)
    assert kw["dtype"] is torch.float32 and kw["device_map"] == "auto"
    assert list(kw["max_memory"]) == [0, 1, 2]  # exactly the worker's GPUs, no "cpu": never offloaded to RAM
    assert kw["max_memory"][0] == gpu_weight_budget(24 * GB) == int(23 * GB / 1.2)
    with pytest.raises(BackendError, match="placed on 3 GPUs but this worker sees 2"):
        hf_load_kwargs(cuda, "auto", 3, [80 * GB] * 2)


def test_hf_gpu_budget_holds_the_weights_exactly_when_placement_gives_k_gpus():
    """Placement's k for Pythia 12B (fp32, 24 GB GPUs) holds its weights under hf's budget; k - 1 would not."""
    from orchestrator.backends.hf import hf_load_kwargs
    from orchestrator.placement import GB, Cluster, Node, Policy, place, weights_bytes
    from orchestrator.plan import ModelSpec

    params = 11_846_072_320
    m = ModelSpec(family="pythia", name="12b", path="p", revision="main", params=params, dtype="float32")
    (p,) = place([m], Cluster((Node("n", 64, 8, 24 * GB, 512 * GB),)), Policy(gpus_per_model=None))
    k = p.gpus_per_replica
    assert k == 3
    budget = hf_load_kwargs(torch.device("cuda"), torch.float32, k, [24 * GB] * 8)["max_memory"]
    fewer = hf_load_kwargs(torch.device("cuda"), torch.float32, k - 1, [24 * GB] * 8)["max_memory"]
    assert sum(budget.values()) >= weights_bytes(params, "float32") > sum(fewer.values())


def _load_on(path, gpus: int, **cfg) -> Backend:
    return load_backend(ModelSize(path=str(path), params=1), ModelFamily(family="tiny"),
                        BackendConfig(batch_size=3, **cfg), threads=1, gpus=gpus)


def test_several_gpus_without_accelerate_is_refused_naming_the_fix(monkeypatch, model_dir):
    monkeypatch.setattr(hf_module, "_has_accelerate", lambda: False)
    with pytest.raises(BackendError, match=r"placed on 2 GPUs.*pip install accelerate"):
        _load_on(model_dir, 2, device="cuda")
    # on CPU, or on one GPU, accelerate is not needed and loading is as before
    b = _load_on(model_dir, 2, device="cpu")
    assert b.device.type == "cpu" and b.generate(["1+1="], 3) == _load(model_dir).generate(["1+1="], 3)


def test_several_gpus_that_the_worker_cannot_see_are_refused(monkeypatch, model_dir):
    monkeypatch.setattr(hf_module, "_has_accelerate", lambda: True)
    monkeypatch.setattr(hf_module, "_visible_gpu_bytes", lambda: [])
    with pytest.raises(BackendError, match="placed on 4 GPUs but this worker sees 0"):
        _load_on(model_dir, 4, device="cuda")


def test_a_device_map_that_spills_to_cpu_or_disk_is_refused():
    """transformers quietly offloads what does not fit to disk (read from the safetensors): slow, so refused."""
    from types import SimpleNamespace

    hf_module._check_on_gpus(SimpleNamespace(hf_device_map={"a": 0, "b": 1, "c": 2}, name_or_path="m"), 3)
    for spill in ("cpu", "disk"):
        model = SimpleNamespace(hf_device_map={"a": 0, "b": 1, "lm_head": spill}, name_or_path="m")
        with pytest.raises(BackendError, match=rf"does not fit on its 2 GPUs.*\['{spill}'\].*memory_gb"):
            hf_module._check_on_gpus(model, 2)
