"""A correct answer scores 0 on every prompt format: the pipeline's records, with real tokenizers.

Token edit distance compares the extracted answer with the targets, each
normalised and tokenized on its own. It used to compare the raw generation's
token ids with targets[0]'s ids as scored after the prompt, where the
prompt's trailing whitespace had been moved onto the target: after
BIG-bench's "\\nA: " a correct "46" scored 1 (and under chain of thought the
reasoning's length).

The backend here is the real transformers backend (real tokenizer, real
scoring of targets and options) with its greedy generation replaced by a
scripted reply: a tiny random model cannot be made to answer correctly, and
the question is what the pipeline records for an answer, not what the model
writes. Two tokenizers: the zoo's character tokenizer and a byte-level BPE
trained here (spaces attach to the next word, as in GPT-2).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from orchestrator import metrics as M
from orchestrator.backends import load_backend
from orchestrator.backends.base import finish_generation
from orchestrator.config import BackendConfig, ModelFamily, ModelSize, PromptConfig, TaskConfig
from orchestrator.inference import run_shard
from orchestrator.metrics import MetricContext
from orchestrator.plan import Cell, PromptStyle, Shard
from orchestrator.prompts import render
from orchestrator.record import RECORD_VERSION
from orchestrator.store import SweepStore
from orchestrator.tasks import load_task
from orchestrator.tasks.bigbench import DEFAULT_OUTPUT_REGEX
from orchestrator.tasks.task import Example, Task, with_hash
from orchestrator.zoo.tokenizer import build_tokenizer
from tests.conftest import BIGBENCH

N = 4  # examples per task
CHAT = ("{% for m in messages %}<|user|>\n{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def _bpe() -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE trained on a few hundred lines of the tasks' vocabulary."""
    corpus = [f"Q: What is {a} plus {b}?\nA: {a + b}. {a}+{b}={a + b} The answer is {a + b}." for a in range(0, 99, 3)
              for b in range(0, 99, 7)] + ["unscramble: hist this sith", "Question: Answer: choice"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    eos = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos, pad_token=eos,
                                   clean_up_tokenization_spaces=False)


@pytest.fixture(scope="module", params=["char", "bpe"])
def backend(request, tmp_path_factory):
    tok = build_tokenizer() if request.param == "char" else _bpe()
    if request.param == "bpe":  # spaces belong to the next word: " 46" and "46" are different tokens
        assert tok(" 46", add_special_tokens=False)["input_ids"][0] not in tok("46", add_special_tokens=False)[
            "input_ids"]
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=512, vocab_size=len(tok),
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp(f"model-{request.param}")
    GPT2LMHeadModel(cfg).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    b = load_backend(ModelSize(path=str(path), params=1), ModelFamily(family="t"), BackendConfig(batch_size=4),
                     threads=1)
    b.tokenizer.chat_template = CHAT  # the prompt ends in "<|assistant|>\n": whitespace again
    yield b
    b.close()


class Scripted:
    """The real backend, except that `generate` writes the given reply for each prompt (cut at stop as usual)."""

    def __init__(self, real, replies: dict[str, str]):
        self.real, self.replies = real, replies

    def __getattr__(self, name):
        return getattr(self.real, name)

    def generate(self, prompts, max_new_tokens, stop=()):
        return [finish_generation(self._ids(self.replies[p]), stop, [], self.real._decode) for p in prompts]

    def _ids(self, text: str) -> list[int]:
        # newline by newline, as a model writes them (the zoo tokenizer reads "\n\n" in one piece as <unk>)
        ids = [i for piece in re.split(r"(\n)", text) if piece for i in self.real.tokenize(piece)]
        assert self.real._decode(ids) == text
        return ids


def _records(backend, task: Task, prompt: PromptConfig, reply: Callable[[Example, str], str], tmp_path) -> list:
    """run_shard's rows for every example, read back from a real store (as `rescore` reads them)."""
    chat = backend.chat if prompt.style == "chat" else None
    idx = [ex.idx for ex in task.examples]
    reqs = render(task, prompt, idx, backend.count_tokens, backend.max_length, chat)
    by_idx = {ex.idx: ex for ex in task.examples}
    replies = {r.prompt: reply(by_idx[r.example_idx], r.targets[-1]) for r in reqs}
    cell = Cell(id="c", model=None, task=task.name, task_id=task.id, prompt=PromptStyle(prompt.style, prompt),
                n_examples=len(idx))
    rows = run_shard(Scripted(backend, replies), task, cell, Shard("s", "c", 0, len(idx)))
    store = SweepStore(str(tmp_path / "store"), "sw")
    store.write_shard("s", rows)
    return store.read_shards(["s"]).to_dict("records")


def _synth() -> Task:
    return load_task("add", TaskConfig(source="synthetic", generator="addition", digits=2, n=N, seed=0))


def _bigbench() -> Task:
    if not (BIGBENCH / "arithmetic" / "task.json").exists():
        pytest.skip(f"BIG-bench task files not found at {BIGBENCH} (shared/ is not checked out beside the repo)")
    return load_task("bb", TaskConfig(source="bigbench", url=str(BIGBENCH / "arithmetic"),
                                      subtask="2_digit_addition", limit=N))


def _jsonl(tmp_path) -> Task:
    path = tmp_path / "qa.jsonl"
    rows = [{"input": "Capital of France?", "target": "Paris"}, {"input": "Capital of Japan?", "target": ["Tokyo"]},
            {"input": "2+2?", "target": "4"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return load_task("qa", TaskConfig(source="jsonl", url=str(path)))


def _unscramble() -> Task:
    """word_unscrambling's shape: BIG-bench defaults, its default regex, several acceptable targets."""
    examples = (Example(0, "hsit", ("this", "sith", "hist")), Example(1, "hsit", ("this", "sith")),
                Example(2, "odg", ("dog", "god")))
    return with_hash(Task(name="unscramble", source="test", examples=examples, output_regex=DEFAULT_OUTPUT_REGEX))


def _regex_task(regex: str, targets: tuple[str, ...]) -> Task:
    examples = tuple(Example(i, f"q{i}", (t,)) for i, t in enumerate(targets))
    return with_hash(Task(name="rx", source="test", examples=examples, output_regex=regex))


def _plain(ex: Example, target: str) -> str:
    return f"{target}\nQ: more"  # the model goes on; the stop string cuts it


FORMATS: dict[str, tuple[Callable, PromptConfig, Callable[[Example, str], str]]] = {
    "zoo arithmetic": (lambda tmp: _synth(), PromptConfig(), _plain),
    "zoo three-shot": (lambda tmp: _synth(), PromptConfig(style="k_shot", shots=3), _plain),
    "bigbench": (lambda tmp: _bigbench(), PromptConfig(), lambda ex, t: f"{t}. Next"),
    "bigbench several targets": (lambda tmp: _unscramble(), PromptConfig(), lambda ex, t: f"{t}. It is"),
    "jsonl": (_jsonl, PromptConfig(), _plain),
    "template": (lambda tmp: _synth(), PromptConfig(style="template", template="Question: {input}\nAnswer: "),
                 _plain),
    "chat": (lambda tmp: _synth(), PromptConfig(style="chat"), _plain),
    "chain of thought": (lambda tmp: _synth(), PromptConfig(style="chain_of_thought", max_new_tokens=64),
                         lambda ex, t: f" Add the tens, then the ones. The answer is {t}.\n\nQ: next"),
    # output_regex applied once: BIG-bench's default regex would cut "3.5" to "3" on a second pass
    "chain of thought, default regex": (lambda tmp: _regex_task(DEFAULT_OUTPUT_REGEX, ("3.5", "0.25", "12")),
                                        PromptConfig(style="chain_of_thought", max_new_tokens=64),
                                        lambda ex, t: f" Work it out. The answer is {t}.\n\nQ: next"),
    # and a second pass of a context regex finds nothing in the extracted "42"
    "context regex": (lambda tmp: _regex_task(r"answer is (\d+)", ("42", "7")), PromptConfig(),
                      lambda ex, t: f"I think the answer is {t} for sure\nQ: more"),
    "letters": (lambda tmp: _synth(), PromptConfig(style="multiple_choice", mc_format="letters", max_new_tokens=2),
                lambda ex, t: f"{t}."),
}


def _wrong(reply: Callable[[Example, str], str]) -> Callable[[Example, str], str]:
    """The same reply with the answer's last character changed (a letter answer moves to the next letter)."""
    def bad(ex: Example, target: str) -> str:
        last = target[-1]
        other = {"9": "0", "Z": "A"}.get(last, chr(ord(last) + 1))
        return reply(ex, target[:-1] + other)
    return bad


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_correct_answer_is_at_distance_zero_on_every_format(backend, fmt, tmp_path):
    make, prompt, reply = FORMATS[fmt]
    task = make(tmp_path)
    ctx = MetricContext(output_regex=task.output_regex)  # what scoring passes for this task

    def score(name: str, records: list) -> list[float]:
        return M.compute(name, records, ctx)

    recs = _records(backend, task, prompt, reply, tmp_path)
    assert recs and all(r["record_version"] == RECORD_VERSION for r in recs)
    assert score("exact_match", recs) == [1.0] * len(recs), [r["answer"] for r in recs]
    assert score("token_edit_distance", recs) == [0.0] * len(recs)
    assert score("char_edit_distance", recs) == [0.0] * len(recs)

    wrong = _records(backend, task, prompt, _wrong(reply), tmp_path)
    assert score("exact_match", wrong) == [0.0] * len(wrong), [r["answer"] for r in wrong]
    assert all(d >= 1 for d in score("token_edit_distance", wrong))
    assert all(d >= 1 for d in score("char_edit_distance", wrong))


def test_several_targets_are_scored_against_the_nearest_and_most_likely(backend, tmp_path):
    """word_unscrambling: the correct "sith" scored 4 against targets[0] "this"; the wrong "thsi" 2."""
    task = replace(_unscramble(), examples=(Example(0, "hsit", ("this", "sith")),), content_hash="x")
    correct = _records(backend, task, PromptConfig(), lambda ex, t: "sith", tmp_path)
    wrong = _records(backend, task, PromptConfig(), lambda ex, t: "thsi", tmp_path)
    assert M.compute("exact_match", correct + wrong) == [1.0, 0.0]
    assert M.compute("char_edit_distance", correct + wrong) == [0.0, 2.0]
    assert M.compute("token_edit_distance", correct)[0] == 0.0
    (r,) = correct
    lps = list(r["target_logprobs"])
    best = max(range(2), key=lambda i: lps[i])
    assert r["likely_target"] == best
    assert M.compute("target_logprob", correct) == [pytest.approx(max(lps))]
    scored = backend.loglikelihood([(r["prompt"], task.examples[0].targets[best])])[0]
    assert list(r["target_token_logprobs"]) == pytest.approx(list(scored.token_logprobs))


def test_a_store_written_before_answer_tokens_still_scores_and_says_what_is_missing(caplog):
    """Version-1 records (no answer/target token ids) keep their other metrics; the gap is named, with the fix."""
    import logging

    import pandas as pd

    from orchestrator.scoring import _warn_old_records

    old = pd.DataFrame([{"cell_id": "c", "shard_id": "s", "example_idx": 0, "prompt": "\nQ: 1+1\nA: ",
                         "generated": True, "generation": "2", "answer": "2", "generation_token_ids": [5],
                         "targets": ["2"], "target_logprobs": [-0.5], "target_token_ids": [0, 5],
                         "target_token_logprobs": [-0.1, -0.4]}])
    recs = old.to_dict("records")
    assert M.compute("exact_match", recs) == [1.0]
    assert M.compute("target_logprob", recs) == [-0.5]
    assert M.compute("target_token_prob", recs) == [pytest.approx(math.exp(-0.25))]  # one target: still right
    assert math.isnan(M.compute("token_edit_distance", recs)[0])  # not the old off-by-one number
    from orchestrator.metrics import MetricContext
    from orchestrator.partials import partials

    n_old = partials(old, ["s"], ["exact_match"], MetricContext())["s"].old  # no record_version column: all old
    assert n_old == 1
    with caplog.at_level(logging.WARNING):
        _warn_old_records(n_old, "tiny/add/zero_shot", ["exact_match", "token_edit_distance"])
    assert "before record version 2" in caplog.text and "token_edit_distance" in caplog.text
    assert "rerun the cell" in caplog.text
