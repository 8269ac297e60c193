"""A backend that runs no model, for benchmarks of the orchestration path only (`backend.name=echo`).

Like lm-evaluation-harness's `dummy` model: with it, a sweep's time is the
driver, Ray, the store and scoring, so `bench/scale.py` can dispatch 100,000
shards on a laptop. Outputs are deterministic and meaningless: characters are
tokens (ids are code points), every generation is the prompt's last character
repeated up to `max_new_tokens` (cut at a stop string), and a continuation's
log-likelihood is -1 per character. Never use it for results.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.backends.base import cut_at_stop
from orchestrator.config import BackendConfig, ModelFamily, ModelSize
from orchestrator.record import Generation, Scored

DEFAULT_CONTEXT = 1 << 20  # tokens: no prompt is ever cut unless backend.max_length says so


class EchoBackend:
    """Deterministic outputs without a model; see the module doc."""

    name = "echo"

    def __init__(self, size: ModelSize, family: ModelFamily, cfg: BackendConfig, **_: object):
        self.max_length = int(cfg.max_length or DEFAULT_CONTEXT)
        self.batch_size = cfg.batch_size
        self.device = "cpu"

    def count_tokens(self, text: str) -> int:
        return len(text)

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def generate(self, prompts: list[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        out = []
        for p in prompts:
            text, _ = cut_at_stop((p[-1:] or " ") * max_new_tokens, stop)
            out.append(Generation(text=text, token_ids=tuple(ord(c) for c in text)))
        return out

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[Scored]:
        return [Scored(logprob=-float(len(cont)), token_logprobs=(-1.0,) * len(cont),
                       token_ids=tuple(ord(c) for c in cont), is_greedy=False) for _, cont in pairs]

    def chat(self, text: str) -> str:
        return text

    def close(self) -> None:
        pass
