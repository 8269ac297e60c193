"""Task and Example: a benchmark as plain data, whatever file or generator it came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np


@dataclass(frozen=True)
class Example:
    """One evaluation item.

    `targets` are the acceptable free-form answers (first one is the reference);
    `choices`/`choice_scores` are multiple-choice options and their BIG-bench
    `target_scores` (1 for correct, 0 otherwise, fractional allowed);
    `reasoning` is a worked solution used by chain-of-thought exemplars;
    `subtask` names the part of the task the example belongs to (a JSONL
    file's `subtask` field), the stratum of a `limit` sample.
    """

    idx: int
    input: str
    targets: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    choice_scores: tuple[float, ...] = ()
    reasoning: str | None = None
    subtask: str | None = None


@dataclass(frozen=True)
class Task:
    """A task: examples plus the formatting a BIG-bench JSON task declares.

    Defaults follow BIG-bench's JSON task API (bigbench/api/json_task.py);
    `choice_prefix` goes before each option when `append_choices_to_input`.
    `content_hash` covers the examples and formatting so that a changed file
    changes every shard id that depends on it.
    """

    name: str
    source: str
    examples: tuple[Example, ...]
    task_prefix: str = ""
    example_input_prefix: str = "\nQ: "
    example_output_prefix: str = "\nA: "
    few_shot_example_separator: str = "\n"
    append_choices_to_input: bool = True
    choice_prefix: str = "\n  choice: "
    output_regex: str | None = None
    stop: tuple[str, ...] = ("\n",)
    metrics: tuple[str, ...] = ()
    preferred_score: str | None = None
    content_hash: str = field(default="")

    @property
    def id(self) -> str:
        return f"{self.name}@{self.content_hash[:12]}"

    @property
    def has_choices(self) -> bool:
        return any(ex.choices for ex in self.examples)

    @property
    def has_targets(self) -> bool:
        return any(ex.targets for ex in self.examples)


def content_hash(task: Task) -> str:
    """sha256 over everything in a task that can change a model's output or its score.

    The payload is `asdict(task)` without `content_hash` and `source`, built field by field (the same JSON, so
    the same hash): asdict deep-copies every example, 1 s for a 50,000-example task where this takes 0.2 s."""
    payload = {f.name: getattr(task, f.name) for f in fields(task) if f.name not in ("content_hash", "source")}
    names = [f.name for f in fields(Example)]
    examples = []
    for ex in task.examples:
        d = {n: getattr(ex, n) for n in names}
        if d.get("subtask") is None:  # absent: the hash of a task without subtasks stays what it was
            d.pop("subtask", None)
        examples.append(d)
    payload["examples"] = examples
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=list)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def with_hash(task: Task) -> Task:
    """Return `task` with its content hash filled in."""
    from dataclasses import replace

    return replace(task, content_hash=content_hash(task))


def sample_examples(examples: Sequence[Example], limit: int, seed: int) -> tuple[Example, ...]:
    """A seeded random sample of `limit` examples, stratified by `Example.subtask`, in their original order.

    Not the first `limit`: task files are often ordered (in BIG-bench's
    international_phonetic_alphabet_transliterate, 18 of the first 20
    examples go English -> IPA), so a prefix is a biased sample. Each subtask
    keeps its share of the task (proportional allocation, the remainder going
    to the largest fractional parts, ties to the subtask seen first), so a small
    limit keeps the task's mix; within a subtask the examples are drawn without
    replacement by `numpy.random.default_rng(seed)`, subtasks in order of first
    appearance. The same examples, seed and limit give the same sample on every
    machine; `limit` >= the number of examples keeps them all.
    """
    if limit < 1:
        raise ValueError(f"limit={limit} must be >= 1")
    if limit >= len(examples):
        return tuple(examples)
    strata: dict[str | None, list[int]] = {}
    for i, ex in enumerate(examples):
        strata.setdefault(ex.subtask, []).append(i)
    sizes = [len(members) for members in strata.values()]
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for members, quota in zip(strata.values(), _allocate(limit, sizes), strict=True):
        if quota:
            keep.extend(members[j] for j in rng.choice(len(members), size=quota, replace=False))
    return tuple(examples[i] for i in sorted(keep))


def _allocate(total: int, sizes: Sequence[int]) -> list[int]:
    """Split `total` over strata of `sizes` in proportion (Hamilton's largest-remainder method), exactly."""
    n = sum(sizes)
    quotas = [total * s // n for s in sizes]
    remainders = [total * s % n for s in sizes]
    order = sorted(range(len(sizes)), key=lambda h: (-remainders[h], h))
    for h in order[: total - sum(quotas)]:
        quotas[h] += 1
    return quotas
