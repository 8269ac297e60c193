"""BIG-bench JSON tasks (task.json) from any fsspec URL -> Task.

Semantics follow BIG-bench's own loader, bigbench/api/json_task.py (bigbench
1.0.0), so a task means here what it means there:

- formatting defaults: example_input_prefix "\\nQ: ", example_output_prefix
  "\\nA: ", choice_prefix "\\n  choice: ", few_shot_example_separator "\\n",
  append_choices_to_input true, task_prefix "";
- an example needs `input` and `target` (a string or a list) and/or
  `target_scores` (option -> score); with only `target_scores` the target is
  the first option with the highest score, and at least one option must score
  above the others;
- options keep file order (BIG-bench scores `list(target_scores.keys())`);
- a task with neither `output_regex` nor `stop_string` gets BIG-bench's
  default output regex `[^\\.\\?\\!\\;\\n]+` (the answer is the first sentence);
- metrics must be names BIG-bench knows; multiple-choice metrics need
  `target_scores` on every example, generative ones `target`;
- a task.json without `examples` is a parent: its subtasks are the sub-folders
  that hold a task.json. One is chosen with `tasks.<name>.subtask=<folder>`.

Two deliberate differences: examples keep their file position as `idx` (BIG-bench
drops exact duplicates; the k-shot builder excludes them from a query's
exemplars instead), and a task with no `stop_string` stops generating at "\\n".
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator import store
from orchestrator.tasks.errors import TaskError, lone_surrogate, undecodable
from orchestrator.tasks.task import Example, Task

# bigbench/api/json_task.py: GENERATIVE_METRICS, SCORING_METRICS, MULTIPLE_CHOICE_METRICS.
GENERATIVE_METRICS = (
    "bleu",
    "bleurt",
    "exact_str_match",
    "case_insensitive_str_match",
    "sequence_f1",
    "numeric_match_with_0_1_relative_error",
    "rouge",
)
SCORING_METRICS = ("log_likelihood",)
MULTIPLE_CHOICE_METRICS = (
    "multiple_choice_grade",
    "calibration_multiple_choice_brier_score",
    "expected_calibration_error",
    "weighted_log_probabilities",
    "weighted_probabilities",
    "macro_f1",
)
KNOWN_METRICS = GENERATIVE_METRICS + SCORING_METRICS + MULTIPLE_CHOICE_METRICS
# Keys of json_task.SCORE_RANGES: what `preferred_score` may name ("rouge" is split in three there).
PREFERRED_SCORES = (
    "bleu",
    "sequence_f1",
    "bleurt",
    "calibration_multiple_choice_brier_score",
    "expected_calibration_error",
    "exact_str_match",
    "case_insensitive_str_match",
    "log_likelihood",
    "multiple_choice_grade",
    "numeric_match_with_0_1_relative_error",
    "rouge1",
    "rouge2",
    "rougeLsum",
    "weighted_log_probabilities",
    "weighted_probabilities",
    "macro_f1",
)
DEFAULT_OUTPUT_REGEX = r"[^\.\?\!\;\n]+"  # json_task._DEFAULT_REGEX
TASK_FILE = "task.json"

_STR_FIELDS = (
    "task_prefix",
    "example_input_prefix",
    "example_output_prefix",
    "choice_prefix",
    "few_shot_example_separator",
    "stop_string",
    "output_regex",
)


def task_file_url(url: str) -> str:
    """`url` names a task.json or the folder holding one; return the file's URL."""
    return url if url.rstrip("/").endswith(".json") else store.join(url, TASK_FILE)


def load(name: str, url: str, subtask: str | None = None) -> Task:
    """Load the BIG-bench task at `url` (file or folder), or its `subtask` if it is a parent task."""
    file_url = task_file_url(url)
    data = _read_json(file_url)
    folder = file_url.rsplit("/", 1)[0] if "/" in file_url else "."
    if subtask:
        if "examples" in data:
            raise TaskError(
                f"{file_url}: tasks.{name}.subtask={subtask!r} is set, but this task has its own examples "
                f"and no subtasks; remove tasks.{name}.subtask"
            )
        sub_url = store.join(folder, subtask, TASK_FILE)
        if not store.exists(sub_url):
            raise TaskError(
                f"{file_url}: no subtask {subtask!r} (looked for {sub_url}); "
                f"subtasks: {', '.join(list_subtasks(folder)) or 'none'}"
            )
        data, file_url, folder = _read_json(sub_url), sub_url, store.join(folder, subtask)
    if "examples" not in data:
        subs = list_subtasks(folder)
        if not subs:
            raise TaskError(f"{file_url}: field 'examples' is missing and the folder has no subtasks")
        prefix = f"{subtask}/" if subtask else ""
        raise TaskError(
            f"{file_url}: {data.get('name', 'this task')!r} is a parent task with subtasks "
            f"{', '.join(subs)}; pick one with tasks.{name}.subtask={prefix}{subs[0]} "
            f"(any of: {', '.join(prefix + s for s in subs)})"
        )
    return parse(data, file_url, name)


def list_subtasks(folder: str) -> list[str]:
    """Sub-folders of a parent task that hold a task.json, sorted (as BIG-bench orders them)."""
    return sorted(d for d in store.list_dirs(folder) if store.exists(store.join(folder, d, TASK_FILE)))


def parse(data: Any, url: str, name: str) -> Task:
    """Validate a decoded task.json and build the Task; every error names `url`, the example and the field."""
    if not isinstance(data, dict):
        raise TaskError(f"{url}: the top level must be a JSON object, got {type(data).__name__}")
    for key in _STR_FIELDS:
        if key in data and not isinstance(data[key], str):
            raise TaskError(f"{url}: field {key!r} must be a string, got {data[key]!r}")
    if "append_choices_to_input" in data and not isinstance(data["append_choices_to_input"], bool):
        raise TaskError(f"{url}: field 'append_choices_to_input' must be true or false")
    metrics = _metrics(data, url)
    preferred = data.get("preferred_score")
    if preferred is not None and preferred not in PREFERRED_SCORES:
        raise TaskError(f"{url}: field 'preferred_score': unknown score {preferred!r}; use one of {PREFERRED_SCORES}")
    output_regex = data.get("output_regex")
    if output_regex is not None:
        try:
            groups = re.compile(output_regex).groups
        except re.error as e:
            raise TaskError(f"{url}: field 'output_regex' is not a valid regular expression: {e}") from e
        if groups > 1:
            raise TaskError(
                f"{url}: field 'output_regex' {output_regex!r} has {groups} capturing groups; the answer is the "
                "first match's group, so use one group and make the others non-capturing (?:...)"
            )
    stop_string = data.get("stop_string")
    if output_regex is None and stop_string is None:
        output_regex = DEFAULT_OUTPUT_REGEX
    raw = data.get("examples")
    if not isinstance(raw, list):
        raise TaskError(f"{url}: field 'examples' must be a list of objects, got {type(raw).__name__}")
    if not raw:
        raise TaskError(f"{url}: field 'examples' is empty: a task needs at least one example")
    needs_scores = any(m in MULTIPLE_CHOICE_METRICS for m in metrics)
    needs_target = any(m in GENERATIVE_METRICS + SCORING_METRICS for m in metrics)
    examples = tuple(_example(i, ex, url, needs_target, needs_scores) for i, ex in enumerate(raw))
    return Task(
        name=name,
        source=url,
        examples=examples,
        task_prefix=data.get("task_prefix", ""),
        example_input_prefix=data.get("example_input_prefix", "\nQ: "),
        example_output_prefix=data.get("example_output_prefix", "\nA: "),
        few_shot_example_separator=data.get("few_shot_example_separator", "\n"),
        append_choices_to_input=data.get("append_choices_to_input", True),
        choice_prefix=data.get("choice_prefix", "\n  choice: "),
        output_regex=output_regex,
        stop=(stop_string,) if stop_string else ("\n",),
        metrics=metrics,
        preferred_score=preferred,
    )


def _read_json(url: str) -> Any:
    """Read and decode one JSON file; a missing file or bad JSON is a TaskError with line and column."""
    try:
        text = store.read_text(url)
    except FileNotFoundError as e:
        raise TaskError(f"{url}: no such file (a BIG-bench task is a task.json or a folder holding one)") from e
    except UnicodeDecodeError as e:
        raise undecodable(url, e) from e
    except OSError as e:
        raise TaskError(f"{url}: cannot read the task file: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskError(f"{url}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    bad = lone_surrogate(data)
    if bad:
        raise TaskError(f"{url}: field {bad} is a lone surrogate escape (\\ud800-\\udfff without its pair), "
                        "not text; fix or remove that escape")
    return data


def _metrics(data: dict, url: str) -> tuple[str, ...]:
    """The task's metric names, each one BIG-bench knows."""
    metrics = data.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise TaskError(f"{url}: field 'metrics' must be a list of metric names, got {metrics!r}")
    for m in metrics:
        if m not in KNOWN_METRICS:
            raise TaskError(f"{url}: field 'metrics': unknown metric {m!r}; BIG-bench knows {', '.join(KNOWN_METRICS)}")
    return tuple(metrics)


def _example(i: int, ex: Any, url: str, needs_target: bool, needs_scores: bool) -> Example:
    """One example, validated field by field."""
    where = f"{url}: example {i}"
    if not isinstance(ex, dict):
        raise TaskError(f"{where}: must be a JSON object with 'input' and 'target'/'target_scores'")
    if "input" not in ex:
        raise TaskError(f"{where}: field 'input' is missing")
    if not isinstance(ex["input"], str):
        raise TaskError(f"{where}: field 'input' must be a string, got {type(ex['input']).__name__}")
    if "target" not in ex and "target_scores" not in ex:
        raise TaskError(f"{where}: field 'target' is missing and so is 'target_scores': an example needs one")
    if needs_target and "target" not in ex:
        raise TaskError(f"{where}: field 'target' is missing, and the task's generative metrics need it")
    if needs_scores and "target_scores" not in ex:
        raise TaskError(f"{where}: field 'target_scores' is missing, and the task's multiple-choice metrics need it")
    choices: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    if "target_scores" in ex:
        ts = ex["target_scores"]
        if not isinstance(ts, dict) or not ts:
            raise TaskError(f"{where}: field 'target_scores' must be a non-empty object of option -> number")
        for k, v in ts.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TaskError(f"{where}: field 'target_scores': option {k!r} has score {v!r}, not a number")
        choices, scores = tuple(ts), tuple(float(v) for v in ts.values())
    if "target" in ex:
        targets = _targets(ex["target"], where)
    else:
        hi, lo = max(scores), min(scores)
        if (len(scores) == 1 and hi == 0) or (len(scores) > 1 and hi <= lo):
            raise TaskError(f"{where}: field 'target_scores': no option scores above the others, so none is correct")
        targets = (choices[scores.index(hi)],)
    return Example(idx=i, input=ex["input"], targets=targets, choices=choices, choice_scores=scores)


def _targets(target: Any, where: str) -> tuple[str, ...]:
    """A target string or a non-empty list of them (numbers are read as their text)."""
    items = target if isinstance(target, list) else [target]
    if not items:
        raise TaskError(f"{where}: field 'target' is an empty list")
    out = []
    for t in items:
        if isinstance(t, bool) or not isinstance(t, (str, int, float)):
            raise TaskError(f"{where}: field 'target' must be a string or a list of strings, got {t!r}")
        out.append(t if isinstance(t, str) else str(t))
    return tuple(out)
