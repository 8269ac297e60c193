"""Prompt styles: a Task's examples -> Requests for a backend, and a generation -> its answer.

Pure functions (no model, no files). Formatting reproduces BIG-bench's
bigbench/api/json_task.py byte for byte:

    zero-shot  = task_prefix + Q(query)
    k-shot     = task_prefix + sep.join([Q(e1) + target(e1), ..., Q(ek) + target(ek), Q(query)])
    Q(ex)      = example_input_prefix + input [+ choice_prefix + choice_prefix.join(options)] + example_output_prefix

where options are appended only when the task's `append_choices_to_input` is
set and the example has choices, in BIG-bench's display order (sorted, then
permuted by numpy RandomState(42), as `default_format_fn` does), and `sep` is
the task's `few_shot_example_separator`. Nothing is stripped: the trailing
space of "\\nA: " stays in the prompt and targets follow it directly, as in
BIG-bench. Exemplars show the reference target (targets[0]) where BIG-bench
picks a random one.

Styles (PromptConfig.style):
- zero_shot: the query alone.
- k_shot: `shots` exemplars drawn with random.Random(seed * 1_000_003 + query idx)
  from the task's other examples (as loaded, so after `limit`), never the query nor
  an example with the same input; any shard renders the same prompt for an idx.
- chain_of_thought: with `shots` > 0 and a task whose examples carry `reasoning`,
  exemplars "Q(ex) reasoning The answer is X." drawn from the examples that have
  one; otherwise Q(query) + cot_trigger (a space is put after an output prefix
  that ends without whitespace: "12+34= Let's think..."). A blank line always
  falls between exemplars (the task's separator if, with the input prefix, it
  makes one, else "\\n\\n") and generation stops at "\\n\\n", so a multi-line
  reasoning is not cut at its first newline.
- multiple_choice (optionally with `shots` exemplars): mc_format=loglik scores the
  example's options by log-likelihood (generate=False); mc_format=letters lists them
  as "A. ..." lines after the input in an order shuffled per example (seeded by
  `seed` and idx), ends with "\\nAnswer: " and generates the letter (targets are the
  correct letters, choices the letters).
- template: `template` with {input} (the bare input) and {choices} (options one per
  line, display order) filled in and nothing else added, to reproduce another
  harness exactly; with `shots`, exemplars are the filled template + target (a space
  between them unless the template ends in whitespace), joined by the task's separator.
- chat: the zero-shot (or, with `shots`, k-shot) text passed through the injected
  `chat` callable (the backend's tokenizer.apply_chat_template).

Every generative request also carries the example's targets and options so a
backend scores their log-likelihood from the same prompt (BIG-bench computes
its generative and multiple-choice metrics from one prompt too).

Context truncation: when `count_tokens` and `max_tokens` are given and the prompt's
tokens plus the continuation budget (max_new_tokens when generating, and the
longest target or option) exceed `max_tokens`, exemplars are dropped, last first,
until it fits; `Request.n_shots` counts those kept and `shots_dropped` those
removed. A query that does not fit even alone is sent with every exemplar
dropped; the backend then keeps its last tokens (the end is what the model
continues) and the record says so (`Record.truncated`, counted per cell).

A style that cannot apply (multiple_choice on a task without options, more
shots than usable exemplars, a template naming an unknown field, ...) raises
ConfigError; `check` runs that for a whole task before any model is loaded.
"""

from __future__ import annotations

import functools
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from orchestrator.config import ConfigError, PromptConfig
from orchestrator.metrics.definitions import extract_answer as regex_answer
from orchestrator.record import Request
from orchestrator.tasks.bigbench import DEFAULT_OUTPUT_REGEX
from orchestrator.tasks.task import Example, Task

BIGBENCH_CHOICE_SEED = 42  # json_task.JsonTask's default random_seed
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTERS_CUE = "\nAnswer: "
COT_STOP = "\n\n"
STYLES = ("zero_shot", "k_shot", "chain_of_thought", "multiple_choice", "template", "chat")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TEMPLATE_FIELDS = ("input", "choices")
_ANSWER_IS = re.compile(r"answer is[:\s]*(.+?)\s*(?:\.(?:\s|$)|\n|$)", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_LETTER = re.compile(r"\(?([A-Z])(?:[).:,]|\s|$)")


def render(
    task: Task,
    prompt: PromptConfig,
    indices: Sequence[int],
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    chat: Callable[[str], str] | None = None,
) -> list[Request]:
    """One Request per example index (Example.idx), in the order given; see the module doc for each style."""
    _check_style(task, prompt, chat)
    by_idx = _index(task).by_idx
    out = []
    for idx in indices:
        if idx not in by_idx:
            raise ValueError(f"example idx {idx} is not in task {task.name!r} ({len(task.examples)} examples)")
        out.append(_render_one(task, prompt, by_idx[idx], count_tokens, max_tokens, chat))
    return out


def check(task: Task, prompt: PromptConfig, label: str | None = None) -> None:
    """Raise ConfigError now if `prompt` cannot render some example of `task`, so a sweep fails before any model runs.

    Renders every example once without a tokenizer (cheap); a chat template is
    assumed to come from the backend. `label` (e.g. "prompts.k_shot") prefixes the message.
    """
    try:
        render(task, prompt, [ex.idx for ex in task.examples], chat=lambda text: text)
    except ConfigError as e:
        if label is None:
            raise
        raise ConfigError(f"{label} on task {task.name!r}: {e}") from e


def display_order(choices: Sequence[str]) -> list[str]:
    """Options in the order BIG-bench shows them: sorted, then permuted by RandomState(42)."""
    ordered = sorted(choices)
    return [ordered[i] for i in _permutation(len(ordered))]


@functools.lru_cache(maxsize=256)
def _permutation(n: int) -> tuple[int, ...]:
    """BIG-bench re-seeds per example, so the permutation depends only on the number of options."""
    return tuple(int(i) for i in np.random.RandomState(seed=BIGBENCH_CHOICE_SEED).permutation(n))


def format_query(task: Task, ex: Example) -> str:
    """Q(ex): input prefix + input (+ appended options) + output prefix, as BIG-bench's default_format_fn."""
    text = ex.input
    if task.append_choices_to_input and ex.choices:
        text += task.choice_prefix + task.choice_prefix.join(display_order(ex.choices))
    return task.example_input_prefix + text + task.example_output_prefix


def stop_strings(task: Task, prompt: PromptConfig) -> tuple[str, ...]:
    """Where generation stops for this style: the task's stop, or a blank line for chain of thought."""
    return (COT_STOP,) if prompt.style == "chain_of_thought" else tuple(task.stop)


def extract_answer(generation: str, task: Task, prompt: PromptConfig) -> str:
    """The answer in a generation, for exact-match scoring.

    The generation is first cut at the style's stop strings (leading whitespace
    skipped, so "\\n42" is not cut to nothing). Chain of thought: the first group of
    prompt.answer_pattern, else the text after the first "answer is" (narrowed by
    the task's own output_regex if it has one), else the task's output_regex, else
    the last number, else the stripped text. multiple_choice/letters: the leading
    capital letter. Otherwise: the first match of the task's output_regex (its
    first group if it has groups; "" when nothing matches, as BIG-bench), else the
    stripped text. Results are stripped of surrounding whitespace.
    """
    text = _cut(generation, stop_strings(task, prompt))
    if prompt.style == "chain_of_thought":
        return _extract_cot(text, task, prompt)
    if prompt.style == "multiple_choice" and prompt.mc_format == "letters":
        m = _LETTER.match(text.strip())
        return m.group(1) if m else text.strip()
    if task.output_regex:
        return _first_match(task.output_regex, text).strip()
    return text.strip()


# ---------------------------------------------------------------- rendering


def _check_style(task: Task, prompt: PromptConfig, chat: Callable[[str], str] | None) -> None:
    """Fail with a ConfigError naming the field when a style cannot apply to this task."""
    style = prompt.style
    if style not in STYLES:
        raise ConfigError(f"prompt style={style!r} is unknown; use one of {STYLES}")
    others = len(task.examples) - 1
    if style == "k_shot" and prompt.shots < 1:
        raise ConfigError(f"prompt style k_shot needs shots >= 1, got shots={prompt.shots}")
    if style in ("k_shot", "multiple_choice", "template", "chat") and prompt.shots > others:
        raise ConfigError(
            f"prompt shots={prompt.shots} but task {task.name!r} has only {others} other examples "
            "to draw exemplars from; lower shots"
        )
    if style == "multiple_choice":
        if not task.has_choices:
            raise ConfigError(
                f"prompt style multiple_choice needs a task with options, and task {task.name!r} has none "
                "(no target_scores/choices); use zero_shot or k_shot for it"
            )
        if prompt.mc_format not in ("loglik", "letters"):
            raise ConfigError(f"prompt mc_format={prompt.mc_format!r} is unknown; use loglik or letters")
    if style == "template":
        if not prompt.template:
            raise ConfigError("prompt style template needs a template, e.g. template='{input}\\nA:'")
        unknown = sorted(set(_PLACEHOLDER.findall(prompt.template)) - set(_TEMPLATE_FIELDS))
        if unknown:
            raise ConfigError(
                f"prompt template names {', '.join('{' + u + '}' for u in unknown)}; only {{input}} and "
                "{choices} are filled in"
            )
        if "{choices}" in prompt.template and not task.has_choices:
            raise ConfigError(f"prompt template uses {{choices}} but task {task.name!r} has no options")
    if style == "chat" and chat is None:
        raise ConfigError(
            "prompt style chat needs the model's chat template, and none was given "
            "(the model's tokenizer has no chat_template?); use zero_shot or k_shot for a base model"
        )


def _render_one(
    task: Task,
    prompt: PromptConfig,
    ex: Example,
    count_tokens: Callable[[str], int] | None,
    max_tokens: int | None,
    chat: Callable[[str], str] | None,
) -> Request:
    """Build the text for every exemplar count, keep the largest that fits, and wrap it in a Request."""
    style = prompt.style
    generate, stop = True, tuple(task.stop)
    targets, choices, scores = ex.targets, ex.choices, ex.choice_scores
    sep = task.few_shot_example_separator
    head, wrap = task.task_prefix, (lambda s: s)
    shots: list[str] = []

    if style == "zero_shot":
        query = format_query(task, ex)
    elif style in ("k_shot", "chat"):
        query = format_query(task, ex)
        shots = [format_query(task, s) + s.targets[0] for s in _draw(task, prompt, ex)]
        if style == "chat":
            wrap = chat  # type: ignore[assignment]
    elif style == "chain_of_thought":
        sep, stop = _cot_separator(task), (COT_STOP,)
        with_reasoning = _index(task).pool("reasoning")
        pool_has_reasoning = len(with_reasoning.examples) > len(with_reasoning.at_idx.get(ex.idx, ()))
        if prompt.shots > 0 and pool_has_reasoning:
            query = format_query(task, ex)
            shots = [_cot_exemplar(task, s) for s in _draw(task, prompt, ex, need="reasoning")]
        else:
            query = _glue(format_query(task, ex), prompt.cot_trigger)
    elif style == "multiple_choice":
        if not ex.choices:
            raise ConfigError(f"prompt style multiple_choice: example {ex.idx} of task {task.name!r} has no options")
        if prompt.mc_format == "letters":
            query, targets, choices, scores = _letters(task, ex, prompt.seed)
            lettered = (_letters(task, s, prompt.seed) for s in _draw(task, prompt, ex, need="choices"))
            shots = [q + correct[0] for q, correct, _, _ in lettered]
        else:
            generate = False
            query = format_query(task, ex)
            shots = [format_query(task, s) + s.targets[0] for s in _draw(task, prompt, ex, need="choices")]
    else:  # template
        head = ""
        query = _fill(prompt.template or "", ex)
        shots = [_glue(_fill(prompt.template or "", s), s.targets[0]) for s in _draw(task, prompt, ex)]

    def build(k: int) -> str:
        return wrap(head + sep.join([*shots[:k], query]))

    budget = max([prompt.max_new_tokens if generate else 0, *(_len(count_tokens, t) for t in (*targets, *choices))])
    text, kept = _fit(build, len(shots), budget, count_tokens, max_tokens)
    return Request(
        example_idx=ex.idx,
        prompt=text,
        generate=generate,
        max_new_tokens=prompt.max_new_tokens,
        stop=stop,
        targets=targets,
        choices=choices,
        choice_scores=scores,
        n_shots=kept,
        shots_dropped=len(shots) - kept,
    )


def _draw(task: Task, prompt: PromptConfig, query: Example, need: str = "any") -> list[Example]:
    """`prompt.shots` exemplars for `query`, seeded by (seed, query idx) so any shard draws the same ones.

    The pool is the task's examples that pass `need` (any, reasoning, choices), without the query and any
    example with its input, in task order; it is a view (_Others) over a list built once per task, so a draw
    costs O(shots + duplicates of the query) instead of O(examples), and `random.sample` picks the same
    positions from it as from the copied list it replaces (it only reads len and items).
    """
    if prompt.shots <= 0:
        return []
    eligible = _index(task).pool(need)
    skip = sorted({*eligible.at_input.get(query.input, ()), *eligible.at_idx.get(query.idx, ())})
    pool = _Others(eligible.examples, skip)
    if prompt.shots > len(pool):
        raise ConfigError(
            f"prompt shots={prompt.shots} but task {task.name!r} has only {len(pool)} usable exemplars for "
            f"example {query.idx} (other examples, not repeating its input); lower shots"
        )
    return random.Random(prompt.seed * 1_000_003 + query.idx).sample(pool, prompt.shots)


_NEEDS: dict[str, Callable[[Example], bool]] = {
    "any": lambda e: True,
    "reasoning": lambda e: bool(e.reasoning),
    "choices": lambda e: bool(e.choices),
}


class _Pool:
    """The examples that pass one `need`, in task order, with their positions by input and by idx."""

    def __init__(self, examples: Sequence[Example]):
        self.examples = list(examples)
        self.at_input: dict[str, list[int]] = {}
        self.at_idx: dict[int, list[int]] = {}
        for pos, e in enumerate(self.examples):
            self.at_input.setdefault(e.input, []).append(pos)
            self.at_idx.setdefault(e.idx, []).append(pos)


class _TaskIndex:
    """What rendering looks up per example, built once per task instead of once per query or per shard."""

    def __init__(self, task: Task):
        self.task = task
        self.by_idx = {ex.idx: ex for ex in task.examples}
        self._pools: dict[str, _Pool] = {}

    def pool(self, need: str) -> _Pool:
        if need not in self._pools:
            self._pools[need] = _Pool([e for e in self.task.examples if _NEEDS[need](e)])
        return self._pools[need]


class _Others(Sequence):
    """`items` without the positions in sorted `skip`, read in place: item j is found by stepping over skips."""

    def __init__(self, items: list[Example], skip: list[int]):
        self.items, self.skip = items, skip

    def __len__(self) -> int:
        return len(self.items) - len(self.skip)

    def __getitem__(self, j):  # type: ignore[override]
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(j)
        for s in self.skip:
            if s > j:
                break
            j += 1
        return self.items[j]


_INDEXES: OrderedDict[object, tuple[Task, _TaskIndex]] = OrderedDict()
_INDEXES_KEPT = 16


def _index(task: Task) -> _TaskIndex:
    """The task's _TaskIndex, cached: by content hash when the task has one (a copy a Ray worker unpickled per
    shard hits too), else by identity. A few tasks are kept, least recently used dropped."""
    key: object = (task.name, task.content_hash, len(task.examples)) if task.content_hash else ("id", id(task))
    hit = _INDEXES.get(key)
    if hit is not None and (task.content_hash or hit[0] is task):
        _INDEXES.move_to_end(key)
        return hit[1]
    index = _TaskIndex(task)
    _INDEXES[key] = (task, index)
    while len(_INDEXES) > _INDEXES_KEPT:
        _INDEXES.popitem(last=False)
    return index


def _fit(
    build: Callable[[int], str],
    n: int,
    budget: int,
    count_tokens: Callable[[str], int] | None,
    max_tokens: int | None,
) -> tuple[str, int]:
    """The prompt with the most exemplars (of n) that leaves `budget` tokens; the bare query if none fits."""
    if count_tokens is None or max_tokens is None:
        return build(n), n
    for k in range(n, -1, -1):
        text = build(k)
        if count_tokens(text) + budget <= max_tokens:
            return text, k
    return build(0), 0


def _len(count_tokens: Callable[[str], int] | None, text: str) -> int:
    return count_tokens(text) if count_tokens is not None else 0


def _glue(text: str, more: str) -> str:
    """Join with one space where neither side brings whitespace ("12+34=" + "Let's ..." -> "12+34= Let's ...")."""
    if text and more and not text[-1].isspace() and not more[0].isspace():
        return f"{text} {more}"
    return text + more


def _cot_separator(task: Task) -> str:
    """The task's separator if exemplars are already split by a blank line, else a blank line."""
    sep = task.few_shot_example_separator
    return sep if COT_STOP in sep + task.example_input_prefix else COT_STOP


def _cot_exemplar(task: Task, ex: Example) -> str:
    """Q(ex) reasoning The answer is X."""
    answer = ex.targets[0]
    return (
        _glue(format_query(task, ex), ex.reasoning or "")
        + f" The answer is {answer}"
        + ("" if answer.endswith(".") else ".")
    )


def _letters(task: Task, ex: Example, seed: int) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[float, ...]]:
    """(query, correct letters, letters, scores), options as "A. text" lines in a seeded per-example order.

    Not BIG-bench's fixed permutation: with it an answer's letter follows its sort rank
    (for "answer +-1/+-10" options almost always A or D), a shortcut a model could learn.
    """
    if len(ex.choices) > len(LETTERS):
        raise ConfigError(
            f"prompt mc_format=letters handles at most {len(LETTERS)} options, and example {ex.idx} of task "
            f"{task.name!r} has {len(ex.choices)}; use mc_format=loglik"
        )
    order = sorted(ex.choices)
    random.Random(f"letters:{seed}:{ex.idx}").shuffle(order)
    score_of = dict(zip(ex.choices, ex.choice_scores, strict=True))
    letters = tuple(LETTERS[: len(order)])
    scores = tuple(score_of[c] for c in order)
    best = max(scores)
    correct = tuple(L for L, s in zip(letters, scores, strict=True) if s == best)
    lines = "".join(f"\n{L}. {c}" for L, c in zip(letters, order, strict=True))
    return task.example_input_prefix + ex.input + lines + LETTERS_CUE, correct, letters, scores


def _fill(template: str, ex: Example) -> str:
    """Replace {input} and {choices}; other braces are left as they are."""
    return template.replace("{input}", ex.input).replace("{choices}", "\n".join(display_order(ex.choices)))


# ---------------------------------------------------------------- extraction


def _cut(text: str, stops: Sequence[str]) -> str:
    """Text up to the first stop string, not counting leading whitespace (BIG-bench ignores a stop at 0)."""
    body = text.lstrip()
    cuts = [i for i in (body.find(s) for s in stops if s) if i >= 0]
    return body[: min(cuts)] if cuts else body


def _first_match(regex: str, text: str) -> str:
    """BIG-bench's `next(iter(re.findall(regex, text)), "")`: one implementation, shared with the metrics."""
    return regex_answer(text, regex)


def _extract_cot(text: str, task: Task, prompt: PromptConfig) -> str:
    """Answer of a chain of thought; BIG-bench's default regex (first sentence) is not used here."""
    own_regex = task.output_regex if task.output_regex and task.output_regex != DEFAULT_OUTPUT_REGEX else None
    if prompt.answer_pattern:
        m = re.search(prompt.answer_pattern, text)
        if m:
            return (m.group(1) if m.re.groups else m.group(0)).strip()
    m = _ANSWER_IS.search(text)
    if m:
        answer = m.group(1).strip()
        if own_regex:
            answer = _first_match(own_regex, answer).strip() or answer
        return answer
    if own_regex:
        found = _first_match(own_regex, text).strip()
        if found:
            return found
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else text.strip()
