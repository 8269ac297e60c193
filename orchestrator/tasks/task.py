"""Task and Example: a benchmark as plain data, whatever file or generator it came from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Example:
    """One evaluation item.

    `targets` are the acceptable free-form answers (first one is the reference);
    `choices`/`choice_scores` are multiple-choice options and their BIG-bench
    `target_scores` (1 for correct, 0 otherwise, fractional allowed);
    `reasoning` is a worked solution used by chain-of-thought exemplars.
    """

    idx: int
    input: str
    targets: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    choice_scores: tuple[float, ...] = ()
    reasoning: str | None = None


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
    """sha256 over everything in a task that can change a model's output or its score."""
    payload = asdict(task)
    payload.pop("content_hash", None)
    payload.pop("source", None)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=list)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def with_hash(task: Task) -> Task:
    """Return `task` with its content hash filled in."""
    from dataclasses import replace

    return replace(task, content_hash=content_hash(task))
