"""Request and Record: the one format that flows from prompt to backend to store to metrics.

A Record holds enough that any metric can be recomputed later without running
the model again: raw generation, extracted answer, token ids, and the
log-probabilities of every target and option.

The answer is extracted once, by the pipeline (`prompts.extract_answer`), and
stored; metrics score the stored answer and never re-apply the task's regex.
For token edit distance the answer and every target are stored tokenized the
same way (each normalised string on its own, no special tokens, nothing moved
from the prompt), so a correct answer is at distance 0 whatever the prompt
format. Records of RECORD_VERSION 1 (no `record_version` column) lack those
token ids and hold the reference target's per-token scores only.

Where and how fast a shard ran (`Provenance`) is added to each of its rows by
the worker that ran it. It is an output, never an input: it enters no shard id
and no metric, and stores written before it simply lack those columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

RECORD_VERSION = 2


@dataclass(frozen=True)
class Request:
    """What a backend is asked for one example."""

    example_idx: int
    prompt: str
    generate: bool = True
    max_new_tokens: int = 16
    stop: tuple[str, ...] = ("\n",)
    targets: tuple[str, ...] = ()  # continuations scored by log-likelihood (reference first)
    choices: tuple[str, ...] = ()  # multiple-choice options scored by log-likelihood
    choice_scores: tuple[float, ...] = ()
    n_shots: int = 0
    shots_dropped: int = 0  # exemplars removed to fit the model's context


@dataclass(frozen=True)
class Generation:
    """A backend's greedy continuation, cut at the first stop string."""

    text: str
    token_ids: tuple[int, ...]
    truncated: bool = False  # the prompt was longer than the context allows and lost its first tokens


@dataclass(frozen=True)
class Scored:
    """A backend's log-likelihood of one continuation given a prompt."""

    logprob: float
    token_logprobs: tuple[float, ...]
    token_ids: tuple[int, ...]
    is_greedy: bool
    truncated: bool = False  # the context lost its first tokens, or the continuation did not fit (NaN)


@dataclass
class Record:
    """One example's result in one cell. Stored as one row of a shard file."""

    cell_id: str
    shard_id: str
    example_idx: int
    prompt: str
    n_prompt_tokens: int = 0
    n_shots: int = 0
    shots_dropped: int = 0
    generated: bool = True  # False where the prompt style only scores options (free-form metrics do not apply)
    generation: str = ""
    answer: str = ""  # extracted from the generation once, by the pipeline; metrics score it as stored
    generation_token_ids: list[int] = field(default_factory=list)
    # the normalised answer and each normalised target, each tokenized on its own (no special tokens)
    answer_token_ids: list[int] = field(default_factory=list)
    target_answer_token_ids: list[list[int]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    target_logprobs: list[float] = field(default_factory=list)  # one per target, summed over tokens
    likely_target: int = -1  # index of the most likely target (`most_likely`); -1 without targets
    target_token_ids: list[int] = field(default_factory=list)  # most likely target, as scored after the prompt
    target_token_logprobs: list[float] = field(default_factory=list)  # most likely target, per token
    target_is_greedy: bool = False  # most likely target
    choices: list[str] = field(default_factory=list)
    choice_scores: list[float] = field(default_factory=list)
    choice_logprobs: list[float] = field(default_factory=list)
    choice_n_tokens: list[int] = field(default_factory=list)
    # the model did not read the whole prompt: generation prompt or any target's/option's context was cut
    truncated: bool = False
    target_truncated: list[bool] = field(default_factory=list)  # per target: context cut or target unscorable
    choice_truncated: list[bool] = field(default_factory=list)  # per option: context cut or option unscorable
    record_version: int = RECORD_VERSION

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class Provenance:
    """Which node, device and model replica ran a shard, and how long loading and inference took.

    Added by the worker to every row of the shard (the same values on each), so a
    store says where each result came from; not part of the shard id.
    """

    node: str  # Ray node id: unique per node, even for several nodes on one machine
    host: str  # hostname and IP of that node
    device: str  # "cpu" or "cuda:0" (the index this process sees)
    device_name: str  # the GPU's name; "" on CPU
    worker: str  # the model replica (Ray actor id) that ran the shard
    load_seconds: float  # that replica's model load time
    shard_seconds: float  # time to run this shard on it (prompts, generation, scoring)
    gpus: float = 0.0  # GPUs the replica holds (a fraction when it shares one, 0 on CPU): gpu-seconds = this x above
    generate_seconds: float = 0.0  # of shard_seconds: greedy generation
    score_seconds: float = 0.0  # of shard_seconds: log-likelihood scoring of targets and options

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def most_likely(logprobs: Sequence[float]) -> int:
    """Index of the largest log-probability (first on ties); -1 when empty or any is NaN (unscorable).

    An unscored target could be the most likely one, so no index is claimed then.
    """
    values = [float(v) for v in logprobs]
    if not values or any(math.isnan(v) for v in values):
        return -1
    return max(range(len(values)), key=lambda i: (values[i], -i))
