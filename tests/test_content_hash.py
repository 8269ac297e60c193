"""A task's content hash (every shard id hangs on it) is built without asdict's deep copies and is unchanged."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

from orchestrator.config import TaskConfig
from orchestrator.tasks import load_task
from orchestrator.tasks.task import Example, Task, content_hash

FIXTURES = Path(__file__).parent / "fixtures"


def _by_asdict(task: Task) -> str:
    """The hash as it was computed before (asdict of the whole task): the reference."""
    payload = asdict(task)
    payload.pop("content_hash", None)
    payload.pop("source", None)
    for ex in payload["examples"]:
        if ex.get("subtask") is None:
            ex.pop("subtask", None)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=list).encode()).hexdigest()


def test_content_hash_is_the_one_asdict_gave():
    mixed = Task("mixed", "x", (
        Example(0, "Sky?", ("blue", "azure"), ("red", "blue"), (0.0, 1.0), reasoning="look up", subtask="colours"),
        Example(1, "2+2=", ("4",)),
        Example(2, "é?", ("ü",), subtask=None),
    ), output_regex=r"\d+", stop=("\n", "."), metrics=("exact_str_match",))
    tasks = [
        mixed,
        replace(mixed, append_choices_to_input=False, task_prefix="Answer.\n"),
        load_task("s", TaskConfig(source="synthetic", generator="modified_addition", digits=3, n=50, seed=4)),
        load_task("capitals", TaskConfig(source="jsonl", url=str(FIXTURES / "capitals.jsonl"))),
    ]
    for task in tasks:
        assert content_hash(task) == _by_asdict(task), task.name
