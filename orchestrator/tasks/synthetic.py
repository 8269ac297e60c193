"""Seeded arithmetic tasks in the zoo's format ("123+456=" -> "579"), with worked solutions and options.

Problems come from `arithmetic.problem` drawn with `random.Random(seed)`, so the
same generator, digits and seed give the same examples on every machine, and
the first k examples do not depend on `n`. `modified_*` generators are
BIG-bench's "modified arithmetic": the same problems with the answer plus one,
a rule a model can only pick up from in-context exemplars.

Each example carries `reasoning` (a digit-by-digit worked solution, one line,
for chain-of-thought exemplars) and four options (the answer and three seeded
off-by-one/ten distractors, in seeded order) so the task can also be rendered
as multiple choice. The options come from a second generator, so adding them
never changes the problems.
"""

from __future__ import annotations

import random

from orchestrator.tasks import arithmetic
from orchestrator.tasks.task import Example, Task

# generator -> (operation, offset added to the answer)
GENERATORS: dict[str, tuple[str, int]] = {
    "addition": ("addition", 0),
    "subtraction": ("subtraction", 0),
    "multiplication": ("multiplication", 0),
    "modified_addition": ("addition", 1),
    "modified_subtraction": ("subtraction", 1),
    "modified_multiplication": ("multiplication", 1),
}
MIN_DIGITS, MAX_DIGITS = 1, 5
# The most examples one synthetic task makes. Every example is generated, hashed and planned in the driver's
# memory before any model runs, at about 70 us and 1.8 KB each (with its worked solution and options): 10^5 is
# ~7 s and ~200 MB before the first shard (100x a BIG-bench arithmetic task); 10^8 would be hours and 180 GB.
MAX_N = 100_000
N_OPTIONS = 4
_PLACES = ("Ones", "Tens", "Hundreds", "Thousands", "Ten-thousands", "Hundred-thousands")


def source_id(generator: str, digits: int, seed: int, n: int) -> str:
    """The `source` of a synthetic task: everything that determines its examples."""
    return f"synthetic:{generator}:{digits}:{seed}:{n}"


def generate(name: str, generator: str, digits: int, n: int, seed: int) -> Task:
    """Build the task; raises ValueError for an unknown generator or digits outside 1..5."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown synthetic generator {generator!r}; use one of {sorted(GENERATORS)}")
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise ValueError(f"digits={digits} is outside {MIN_DIGITS}..{MAX_DIGITS}")
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n={n} is outside 1..{MAX_N}")
    operation, offset = GENERATORS[generator]
    rng = random.Random(seed)
    option_rng = random.Random(f"options:{generator}:{digits}:{seed}")
    examples = []
    for i in range(n):
        text, target = arithmetic.problem(rng, operation, digits, offset)
        a, b = _operands(text, operation)
        choices = options(int(target), operation, option_rng)
        examples.append(
            Example(
                idx=i,
                input=text,
                targets=(target,),
                choices=tuple(str(c) for c in choices),
                choice_scores=tuple(1.0 if str(c) == target else 0.0 for c in choices),
                reasoning=reasoning(a, b, operation, offset),
            )
        )
    return Task(
        name=name,
        source=source_id(generator, digits, seed, n),
        examples=tuple(examples),
        task_prefix="",
        example_input_prefix="",
        example_output_prefix="",
        few_shot_example_separator="\n",
        append_choices_to_input=False,
        output_regex=None,
        stop=("\n",),
        metrics=("exact_str_match", "multiple_choice_grade"),
        preferred_score="exact_str_match",
    )


def _operands(text: str, operation: str) -> tuple[int, int]:
    """Recover a and b from "a<op>b=" (b may not be negative, a never is)."""
    a, b = text.rstrip("=").split(arithmetic.OPERATIONS[operation], 1)
    return int(a), int(b)


def options(answer: int, operation: str, rng: random.Random) -> list[int]:
    """The answer plus three distractors: off by one or ten first, then by two, eleven or a hundred."""
    allow_negative = operation == "subtraction" or answer < 0

    def pool(deltas: tuple[int, ...]) -> list[int]:
        out = [answer + d for d in deltas]
        return [x for x in out if x != answer and (allow_negative or x >= 0)]

    near = pool((1, -1, 10, -10))
    far = [x for x in pool((2, -2, 11, -11, 100, -100)) if x not in near]
    picks = rng.sample(near, min(N_OPTIONS - 1, len(near)))
    picks += rng.sample(far, N_OPTIONS - 1 - len(picks))
    out = [*picks, answer]
    rng.shuffle(out)
    return out


def reasoning(a: int, b: int, operation: str, offset: int = 0) -> str:
    """A one-line, digit-by-digit worked solution ending in the answer (plus `offset` if modified)."""
    if operation == "addition":
        steps, result = _add_steps(a, b), a + b
    elif operation == "subtraction":
        steps, result = _sub_steps(a, b), a - b
    elif operation == "multiplication":
        steps, result = _mul_steps(a, b), a * b
    else:
        raise ValueError(f"unknown arithmetic operation {operation!r}")
    text = f"{steps} So {a}{arithmetic.OPERATIONS[operation]}{b}={result}."
    if offset:
        text += f" The rule adds {offset}: {result}+{offset}={result + offset}."
    return text


def _digits(x: int) -> list[int]:
    """Digits of a non-negative number, least significant first."""
    return [int(c) for c in reversed(str(x))]


def _add_steps(a: int, b: int) -> str:
    da, db = _digits(a), _digits(b)
    carry, steps = 0, []
    for i in range(max(len(da), len(db))):
        x, y = (da[i] if i < len(da) else 0), (db[i] if i < len(db) else 0)
        s = x + y + carry
        step = f"{_PLACES[i]}: {x}+{y}" + (f"+{carry}" if carry else "") + f"={s}, write {s % 10}"
        steps.append(step + (" carry 1." if s >= 10 else "."))
        carry = s // 10
    if carry:
        steps.append("The last carry 1 is the leading digit.")
    return " ".join(steps)


def _sub_steps(a: int, b: int) -> str:
    lead = ""
    x_num, y_num = a, b
    if a < b:
        lead, x_num, y_num = f"{a} is less than {b}, so work out {b}-{a} and make it negative. ", b, a
    dx, dy = _digits(x_num), _digits(y_num)
    borrow, steps = 0, []
    for i in range(len(dx)):
        x, y = dx[i], (dy[i] if i < len(dy) else 0)
        shown = f"{x}-{y}" + ("-1" if borrow else "")
        d = x - y - borrow
        if d < 0:
            steps.append(f"{_PLACES[i]}: {shown} is negative, borrow 10: 1{shown}={d + 10}, write {d + 10}.")
            borrow = 1
        else:
            steps.append(f"{_PLACES[i]}: {shown}={d}, write {d}.")
            borrow = 0
    return lead + " ".join(steps)


def _mul_steps(a: int, b: int) -> str:
    db = _digits(b)
    partials, steps = [], []
    for i, d in enumerate(db):
        p = a * d * 10**i
        partials.append(p)
        steps.append(f"{a}*{d}={a * d}" + (f", shifted {i} place{'s' if i > 1 else ''}: {p}." if i else "."))
    if len(partials) > 1:
        steps.append(f"Add the partial products: {'+'.join(str(p) for p in partials)}={sum(partials)}.")
    return " ".join(steps)
