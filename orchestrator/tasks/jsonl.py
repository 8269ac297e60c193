"""Your own task as JSON Lines: one example per line.

Each non-blank line is a JSON object:

    {"input": "What is the capital of France?", "target": "Paris"}
    {"input": "Capital of Japan?", "target": ["Tokyo", "Tokyo, Japan"], "choices": ["Kyoto", "Tokyo", "Osaka"]}

- `input` (string, required): the question, without any "Q:"/"A:" framing.
- `target` (string or non-empty list of strings, required): acceptable answers,
  the first being the reference that exemplars show.
- `choices` (list of at least two distinct strings, optional): multiple-choice
  options, kept in this order; every target must be one of them, and the
  options equal to a target score 1, the others 0.
- `reasoning` (string, optional): a worked solution for chain-of-thought exemplars.
- `subtask` (non-empty string, optional): which part of the task the example
  belongs to (a subject, a direction of translation); `limit` then samples
  every subtask in proportion to its size.
- `id`, `comment`, `meta`, `metadata`: allowed and ignored. Any other key is an
  error, so a typo such as "choice" cannot silently turn a task generative.

The task is formatted with BIG-bench's defaults ("\\nQ: " before the input,
"\\nA: " before the answer, options appended as "\\n  choice: X", exemplars
joined by "\\n") and scored with exact_str_match, plus multiple_choice_grade
when any example has choices. A task yaml changes that frame for every prompt
style with `input_prefix`, `output_prefix` and `append_choices` (e.g. `""`, `""`
to show "2+3=" as written, the zoo's format; README, "Bring your own task and
metric"); prompt style `template` gives any other format.
Example `idx` is the example's position among the non-blank lines.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator import store
from orchestrator.tasks.errors import TaskError, lone_surrogate, undecodable
from orchestrator.tasks.task import Example, Task

FIELDS = ("input", "target", "choices", "reasoning", "subtask")
IGNORED = ("id", "comment", "meta", "metadata")


def load(name: str, url: str) -> Task:
    """Read and validate a JSONL task file from any fsspec URL."""
    try:
        text = store.read_text(url)
    except FileNotFoundError as e:
        raise TaskError(f"{url}: no such file") from e
    except UnicodeDecodeError as e:
        raise undecodable(url, e) from e
    except OSError as e:
        raise TaskError(f"{url}: cannot read the task file: {e}") from e
    examples: list[Example] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{url}: line {lineno} (example {len(examples)})"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskError(f"{where}: invalid JSON at column {e.colno}: {e.msg}") from e
        bad = lone_surrogate(obj)
        if bad:
            raise TaskError(f"{where}: field {bad} is a lone surrogate escape (\\ud800-\\udfff without its "
                            "pair), not text; fix or remove that escape")
        examples.append(_example(len(examples), obj, where))
    if not examples:
        raise TaskError(f"{url}: no examples: the file has no non-blank lines")
    has_choices = any(ex.choices for ex in examples)
    all_choices = all(ex.choices for ex in examples)
    return Task(
        name=name,
        source=url,
        examples=tuple(examples),
        metrics=("exact_str_match", "multiple_choice_grade") if has_choices else ("exact_str_match",),
        preferred_score="multiple_choice_grade" if all_choices else "exact_str_match",
    )


def _example(idx: int, obj: Any, where: str) -> Example:
    """One line's object, validated field by field."""
    if not isinstance(obj, dict):
        raise TaskError(f"{where}: must be a JSON object with 'input' and 'target', got {type(obj).__name__}")
    for key in obj:
        if key not in FIELDS + IGNORED:
            raise TaskError(f"{where}: field {key!r} is unknown; use {', '.join(FIELDS)}")
    if not isinstance(obj.get("input"), str):
        problem = "is missing" if "input" not in obj else "must be a string"
        raise TaskError(f"{where}: field 'input' {problem}")
    if "target" not in obj:
        raise TaskError(f"{where}: field 'target' is missing")
    target = obj["target"]
    targets = tuple(target) if isinstance(target, list) else (target,)
    if not targets or not all(isinstance(t, str) for t in targets):
        raise TaskError(f"{where}: field 'target' must be a string or a non-empty list of strings, got {target!r}")
    choices: tuple[str, ...] = ()
    if "choices" in obj:
        raw = obj["choices"]
        if not isinstance(raw, list) or len(raw) < 2 or not all(isinstance(c, str) for c in raw):
            raise TaskError(f"{where}: field 'choices' must be a list of at least two strings, got {raw!r}")
        if len(set(raw)) != len(raw):
            raise TaskError(f"{where}: field 'choices' lists an option twice: {raw!r}")
        choices = tuple(raw)
        for t in targets:
            if t not in choices:
                raise TaskError(f"{where}: field 'target': {t!r} is not one of the choices {list(choices)!r}")
    reasoning = obj.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise TaskError(f"{where}: field 'reasoning' must be a string")
    subtask = obj.get("subtask")
    if subtask is not None and (not isinstance(subtask, str) or not subtask):
        raise TaskError(f"{where}: field 'subtask' must be a non-empty string, got {subtask!r}")
    return Example(
        idx=idx,
        input=obj["input"],
        targets=targets,
        choices=choices,
        choice_scores=tuple(1.0 if c in targets else 0.0 for c in choices),
        reasoning=reasoning,
        subtask=subtask,
    )
