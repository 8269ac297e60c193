"""The zoo's training corpus: synthetic arithmetic in the compact text format.

Each sequence is a run of one sub-task's problems, one `a+b=c` per line,
starting at a line boundary. So a zero-shot prompt ("123+456=") looks like the
start of a training sequence, and a k-shot prompt (k solved lines, then the
query) looks like its middle: in-context examples mean what they mean in
training. Problems come from `orchestrator.tasks.arithmetic.problem`, the same
function the synthetic evaluation tasks use.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass

import torch

from orchestrator.tasks.arithmetic import problem
from orchestrator.zoo.tokenizer import CHARS, SPECIALS


@dataclass(frozen=True)
class CorpusSpec:
    """What the corpus contains; its hash goes into every member's spec hash.

    `mix` lists (operation, digits, weight): a sequence draws one sub-task with
    probability proportional to its weight. Heavier weight on long numbers keeps
    the hard tasks in view of the large models instead of spending them on
    1-digit sums that every size learns.
    """

    mix: tuple[tuple[str, int, float], ...] = (
        ("addition", 1, 0.5),
        ("addition", 2, 1.0),
        ("addition", 3, 2.0),
        ("addition", 4, 3.0),
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

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


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


def build_corpus(spec: CorpusSpec, n_sequences: int | None = None) -> torch.Tensor:
    """All sequences as token ids, shape (n_sequences, seq_len), int64; same spec, same tensor."""
    rng = random.Random(spec.seed)
    n = spec.n_sequences if n_sequences is None else n_sequences
    ids = [[_ID[c] for c in sequence_text(rng, spec)] for _ in range(n)]
    return torch.tensor(ids, dtype=torch.long)


DEFAULT_CORPUS = CorpusSpec()
