"""The zoo's training corpus: synthetic arithmetic in the compact text format.

Each sequence is a run of one sub-task's problems, one `a+b=c` per line,
starting at a line boundary. So a zero-shot prompt ("123+456=") looks like the
start of a training sequence, and a k-shot prompt (k solved lines, then the
query) looks like its middle. Problems come from `orchestrator.tasks.arithmetic.problem`, the same
function the synthetic evaluation tasks use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.tasks.arithmetic import problem
from orchestrator.zoo.tokenizer import CHARS, SPECIALS

if TYPE_CHECKING:  # torch is imported where a corpus is built: the spec and its hash must not pay for it
    import torch


@dataclass(frozen=True)
class CorpusSpec:
    """What the corpus contains; its hash goes into every member's spec hash.

    `mix` lists (operation, digits, weight): a sequence draws one sub-task with
    probability proportional to its weight. Heavier weight on long numbers keeps
    the hard tasks in view of the large models instead of spending them on
    1-digit sums that every size learns. 4-digit sums were tried and left out:
    no member got past 0.01 exact match on them, and they slowed 2- and 3-digit
    learning for all.
    """

    mix: tuple[tuple[str, int, float], ...] = (
        ("addition", 1, 0.25),
        ("addition", 2, 1.0),
        ("addition", 3, 2.0),
    )
    seq_len: int = 64
    n_sequences: int = 40_000
    seed: int = 0

    def describe(self) -> str:
        """One line for the model card."""
        parts = ", ".join(f"{op} {d}-digit (w={w:g})" for op, d, w in self.mix)
        return (
            f"{self.n_sequences} sequences of {self.seq_len} characters, each a run of one sub-task's "
            f"problems 'a+b=c\\n' from orchestrator.tasks.arithmetic.problem, starting at a line "
            f"boundary; sub-tasks: {parts}; seed {self.seed}"
        )


# The tokenizer's vocabulary is fixed (specials, then CHARS), so encoding a
# character is a table lookup: no tokenizer call per line.
_ID = {c: i + len(SPECIALS) for i, c in enumerate(CHARS)}


def sequence_text(rng: random.Random, spec: CorpusSpec) -> str:
    """One training sequence: lines of one sub-task until `seq_len` characters are filled."""
    ops = [m[:2] for m in spec.mix]
    weights = [m[2] for m in spec.mix]
    operation, digits = rng.choices(ops, weights=weights)[0]
    parts: list[str] = []
    n = 0
    while n < spec.seq_len:
        q, a = problem(rng, operation, digits)
        line = f"{q}{a}\n"
        parts.append(line)
        n += len(line)
    return "".join(parts)[: spec.seq_len]


def answer_labels(ids: torch.Tensor) -> torch.Tensor:
    """Labels for the loss: the answer characters and the newline after them; -100 elsewhere.

    Operands are uniformly random, so their loss is irreducible noise. Measured
    on a 30K model (1500 steps), training on every character left 1-digit
    addition at exact match 0.09; training on the answers took it to 0.98.
    """
    import torch

    eq, nl = _ID["="], _ID["\n"]
    pos = torch.arange(ids.shape[-1]).expand_as(ids)
    never = torch.full_like(ids, -1)
    last_eq = torch.cummax(torch.where(ids == eq, pos, never), dim=-1).values
    last_nl = torch.cummax(torch.where(ids == nl, pos, never), dim=-1).values
    # a character is in an answer when the last '=' *before* it is later than the last newline before it
    before_eq = torch.cat([never[..., :1], last_eq[..., :-1]], dim=-1)
    before_nl = torch.cat([never[..., :1], last_nl[..., :-1]], dim=-1)
    return torch.where(before_eq > before_nl, ids, torch.full_like(ids, -100))


def build_corpus(spec: CorpusSpec, n_sequences: int | None = None) -> torch.Tensor:
    """All sequences as token ids, shape (n_sequences, seq_len), int64; same spec, same tensor."""
    import torch

    rng = random.Random(spec.seed)
    n = spec.n_sequences if n_sequences is None else n_sequences
    ids = [[_ID[c] for c in sequence_text(rng, spec)] for _ in range(n)]
    return torch.tensor(ids, dtype=torch.long)


DEFAULT_CORPUS = CorpusSpec()
