"""Task sources -> Task: BIG-bench JSON, seeded synthetic arithmetic, and your own JSONL.

`load_task` is the one entry point: it reads and validates everything before
any model runs, so a malformed file fails the sweep at start with a TaskError
(file URL, example index, field) and a bad config value with a ConfigError.
"""

from __future__ import annotations

from dataclasses import replace

from orchestrator.config import TASK_SOURCES, ConfigError, TaskConfig
from orchestrator.tasks import bigbench, jsonl, synthetic
from orchestrator.tasks.errors import TaskError
from orchestrator.tasks.task import Example, Task, content_hash, sample_examples, with_hash

__all__ = ["Example", "Task", "TaskError", "content_hash", "load_task", "sample_examples", "with_hash"]


def load_task(name: str, cfg: TaskConfig) -> Task:
    """Load task `name` as `cfg` describes it: `limit` applied, `stop` overridden, content hash filled.

    `limit` keeps a random sample of that many examples drawn with `seed`,
    stratified by subtask, in file order (`sample_examples`); the sample is part
    of the content hash, so another seed or limit gives other shard ids.

    source=bigbench: `url` is a task.json or its folder on any fsspec URL;
    `subtask` picks a sub-folder of a parent task. source=synthetic:
    `generator`, `digits` (1..5), `n`, `seed`. source=jsonl: `url` of a JSON
    Lines file (see orchestrator.tasks.jsonl for the format).

    `input_prefix`, `output_prefix` and `append_choices`, where set, replace the
    source's prompt frame (BIG-bench's "\\nQ: ", "\\nA: " and appended options for
    bigbench and jsonl): the frame is part of the task, so every prompt style uses
    it and it enters the content hash; unset, nothing changes.
    """
    source = cfg.source
    if source not in TASK_SOURCES:
        raise ConfigError(f"tasks.{name}.source={source!r} is unknown; use one of {TASK_SOURCES}")
    if source != "bigbench" and cfg.subtask:
        raise ConfigError(f"tasks.{name}.subtask applies only to source=bigbench; remove it")
    if source in ("bigbench", "jsonl") and not cfg.url:
        raise ConfigError(f"tasks.{name}.url is missing: a {source} task needs the URL of its file")
    if source == "bigbench":
        task = bigbench.load(name, str(cfg.url), cfg.subtask)
    elif source == "jsonl":
        task = jsonl.load(name, str(cfg.url))
    else:
        task = _synthetic(name, cfg)
    task = _frame(task, cfg)
    if cfg.stop is not None:
        stop = tuple(cfg.stop)
        if not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"tasks.{name}.stop={list(stop)!r} must be a list of non-empty strings")
        task = replace(task, stop=stop)
    if cfg.limit is not None:
        if cfg.limit < 1:
            raise ConfigError(f"tasks.{name}.limit={cfg.limit} must be >= 1 or null")
        task = replace(task, examples=sample_examples(task.examples, cfg.limit, cfg.seed))
    return with_hash(task)


def _frame(task: Task, cfg: TaskConfig) -> Task:
    """The task with the prompt frame its config declares (input/output prefix, options listed or not)."""
    declared = {
        "example_input_prefix": cfg.input_prefix,
        "example_output_prefix": cfg.output_prefix,
        "append_choices_to_input": cfg.append_choices,
    }
    return replace(task, **{k: v for k, v in declared.items() if v is not None})


def _synthetic(name: str, cfg: TaskConfig) -> Task:
    """Check the generator settings, naming the config field, then generate."""
    if cfg.generator not in synthetic.GENERATORS:
        raise ConfigError(
            f"tasks.{name}.generator={cfg.generator!r} is unknown; use one of {sorted(synthetic.GENERATORS)}"
        )
    if not synthetic.MIN_DIGITS <= cfg.digits <= synthetic.MAX_DIGITS:
        raise ConfigError(f"tasks.{name}.digits={cfg.digits} is outside {synthetic.MIN_DIGITS}..{synthetic.MAX_DIGITS}")
    if not 1 <= cfg.n <= synthetic.MAX_N:
        raise ConfigError(f"tasks.{name}.n={cfg.n} is outside 1..{synthetic.MAX_N} (synthetic.MAX_N: every example "
                          f"is generated and planned in memory before any shard runs)")
    return synthetic.generate(name, cfg.generator, cfg.digits, cfg.n, cfg.seed)
