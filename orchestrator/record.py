"""Request and Record: the one format that flows from prompt to backend to store to metrics.

A Record holds enough that any metric can be recomputed later without running
the model again: raw generation, extracted answer, token ids, and the
log-probabilities of every target and option.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


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


@dataclass(frozen=True)
class Scored:
    """A backend's log-likelihood of one continuation given a prompt."""

    logprob: float
    token_logprobs: tuple[float, ...]
    token_ids: tuple[int, ...]
    is_greedy: bool


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
    answer: str = ""
    generation_token_ids: list[int] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    target_logprobs: list[float] = field(default_factory=list)  # one per target, summed over tokens
    target_token_ids: list[int] = field(default_factory=list)  # reference target (targets[0])
    target_token_logprobs: list[float] = field(default_factory=list)  # reference target, per token
    target_is_greedy: bool = False
    choices: list[str] = field(default_factory=list)
    choice_scores: list[float] = field(default_factory=list)
    choice_logprobs: list[float] = field(default_factory=list)
    choice_n_tokens: list[int] = field(default_factory=list)

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]
