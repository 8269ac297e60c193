"""Prompt styles: exact rendered strings, exemplar draws that never leak the query, truncation, answer extraction."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import numpy as np
import pytest

from orchestrator.config import ConfigError, PromptConfig, TaskConfig
from orchestrator.prompts import _draw, _index, check, display_order, extract_answer, render
from orchestrator.tasks import load_task
from orchestrator.tasks.bigbench import DEFAULT_OUTPUT_REGEX
from orchestrator.tasks.task import Example, Task

TOY = Task(
    name="toy",
    source="test",
    task_prefix="Add.\n",
    examples=(
        Example(0, "1+1?", ("2",), reasoning="One and one make two."),
        Example(1, "2+3?", ("5", "five"), reasoning="Two and three make five."),
    ),
)
MC = Task(
    name="mc",
    source="test",
    examples=(
        Example(0, "Sky?", ("blue",), ("red", "blue", "green", "grey"), (0.0, 1.0, 0.0, 0.0)),
        Example(1, "Grass?", ("green",), ("green", "red", "blue", "grey"), (1.0, 0.0, 0.0, 0.0)),
    ),
)
# the zoo's format, as synthetic tasks declare it
BARE = replace(TOY, task_prefix="", example_input_prefix="", example_output_prefix="", few_shot_example_separator="\n")


def one(task: Task, prompt: PromptConfig, idx: int, **kw):
    return render(task, prompt, [idx], **kw)[0]


def synth(n: int = 30, digits: int = 2) -> Task:
    return load_task("s", TaskConfig(source="synthetic", generator="addition", digits=digits, n=n, seed=0))


# ---------------------------------------------------------------- exact strings


def test_zero_shot_bigbench_format() -> None:
    r = one(TOY, PromptConfig(), 1)
    assert r.prompt == "Add.\n\nQ: 2+3?\nA: "  # trailing space kept, as BIG-bench does
    assert r.generate and r.targets == ("5", "five") and r.choices == ()
    assert r.stop == ("\n",) and r.max_new_tokens == 16 and r.n_shots == 0 and r.shots_dropped == 0
    assert r.example_idx == 1


def test_zero_shot_appends_choices_in_bigbench_order() -> None:
    r = one(MC, PromptConfig(), 0)
    # sorted [blue, green, grey, red], permuted by RandomState(42) -> [1, 3, 0, 2]
    assert r.prompt == "\nQ: Sky?\n  choice: green\n  choice: red\n  choice: blue\n  choice: grey\nA: "
    assert r.generate and r.choices == ("red", "blue", "green", "grey")  # scored in file order
    assert r.choice_scores == (0.0, 1.0, 0.0, 0.0) and r.targets == ("blue",)
    no_append = one(replace(MC, append_choices_to_input=False), PromptConfig(), 0)
    assert no_append.prompt == "\nQ: Sky?\nA: "
    custom = one(replace(MC, choice_prefix=" | "), PromptConfig(), 0)
    assert custom.prompt == "\nQ: Sky? | green | red | blue | grey\nA: "


def test_display_order_is_bigbench_permutation() -> None:
    movies = ["finding nemo", "se7en", "the shining", "heat", "big"]
    for choices in (["b", "a"], ["x", "y", "z"], movies, list("qwertyuiop")):
        expected = [str(c) for c in np.random.RandomState(seed=42).permutation(sorted(choices))]
        assert display_order(choices) == expected


def test_k_shot_exact_string_with_reference_target() -> None:
    r = one(TOY, PromptConfig(style="k_shot", shots=1), 0)
    assert r.prompt == "Add.\n\nQ: 2+3?\nA: 5\n\nQ: 1+1?\nA: "  # reference target "5", not "five"
    assert r.n_shots == 1 and r.shots_dropped == 0


def test_k_shot_bare_format() -> None:
    assert one(BARE, PromptConfig(style="k_shot", shots=1), 1).prompt == "1+1?2\n2+3?"


def test_chain_of_thought_exemplars_with_reasoning() -> None:
    r = one(TOY, PromptConfig(style="chain_of_thought", shots=1, max_new_tokens=64), 1)
    assert r.prompt == "Add.\n\nQ: 1+1?\nA: One and one make two. The answer is 2.\n\nQ: 2+3?\nA: "
    assert r.stop == ("\n\n",) and r.max_new_tokens == 64 and r.n_shots == 1


def test_chain_of_thought_bare_format_gets_blank_line_and_space() -> None:
    r = one(BARE, PromptConfig(style="chain_of_thought", shots=1), 1)
    assert r.prompt == "1+1? One and one make two. The answer is 2.\n\n2+3?"


def test_chain_of_thought_trigger_without_reasoning() -> None:
    plain = replace(TOY, examples=tuple(replace(e, reasoning=None) for e in TOY.examples))
    r = one(plain, PromptConfig(style="chain_of_thought", shots=1, cot_trigger="Think."), 1)
    assert r.prompt == "Add.\n\nQ: 2+3?\nA: Think." and r.n_shots == 0
    zero = one(TOY, PromptConfig(style="chain_of_thought", shots=0), 0)
    assert zero.prompt == "Add.\n\nQ: 1+1?\nA: Let's think step by step."
    assert one(BARE, PromptConfig(style="chain_of_thought"), 0).prompt == "1+1? Let's think step by step."


def test_multiple_choice_loglik() -> None:
    r = one(MC, PromptConfig(style="multiple_choice", mc_format="loglik"), 1)
    assert not r.generate
    # the same option set as example 0, so the same display order
    assert r.prompt == "\nQ: Grass?\n  choice: green\n  choice: red\n  choice: blue\n  choice: grey\nA: "
    assert r.choices == ("green", "red", "blue", "grey") and r.choice_scores == (1.0, 0.0, 0.0, 0.0)
    shot = one(MC, PromptConfig(style="multiple_choice", shots=1), 1)
    sky = "\nQ: Sky?\n  choice: green\n  choice: red\n  choice: blue\n  choice: grey\nA: "
    assert shot.prompt == f"{sky}blue\n{r.prompt}" and shot.n_shots == 1


def test_multiple_choice_letters() -> None:
    r = one(MC, PromptConfig(style="multiple_choice", mc_format="letters"), 0)
    assert r.prompt == "\nQ: Sky?\nA. blue\nB. grey\nC. red\nD. green\nAnswer: "
    assert r.generate and r.targets == ("A",) and r.choices == ("A", "B", "C", "D")
    assert r.choice_scores == (1.0, 0.0, 0.0, 0.0)
    shot = one(MC, PromptConfig(style="multiple_choice", mc_format="letters", shots=1), 1)
    assert shot.prompt == (
        "\nQ: Sky?\nA. blue\nB. grey\nC. red\nD. green\nAnswer: A\n"
        "\nQ: Grass?\nA. blue\nB. grey\nC. green\nD. red\nAnswer: "
    )
    assert shot.targets == ("C",)


def test_letters_spread_the_answer_over_positions() -> None:
    rs = render(synth(200), PromptConfig(style="multiple_choice", mc_format="letters"), range(200))
    counts = {L: sum(r.targets == (L,) for r in rs) for L in "ABCD"}
    assert min(counts.values()) > 25, counts


def test_template_fills_input_and_choices_only() -> None:
    p = PromptConfig(style="template", template='Question: {input} {"k": 1}\nOptions:\n{choices}\nAnswer:')
    r = one(MC, p, 0)
    assert r.prompt == 'Question: Sky? {"k": 1}\nOptions:\ngreen\nred\nblue\ngrey\nAnswer:'
    assert r.generate and r.choices == MC.examples[0].choices
    shot = one(TOY, PromptConfig(style="template", template="{input} =", shots=1), 1)
    # no task prefix (the template is the whole format); a space before the exemplar's answer
    assert shot.prompt == "1+1? = 2\n2+3? ="


def test_chat_wraps_the_prompt() -> None:
    def chat(text: str) -> str:
        return f"<user>{text}</user><bot>"

    assert one(TOY, PromptConfig(style="chat"), 1, chat=chat).prompt == "<user>Add.\n\nQ: 2+3?\nA: </user><bot>"
    r = one(TOY, PromptConfig(style="chat", shots=1), 0, chat=chat)
    assert r.prompt == "<user>Add.\n\nQ: 2+3?\nA: 5\n\nQ: 1+1?\nA: </user><bot>" and r.n_shots == 1


# ---------------------------------------------------------------- exemplar draws


def test_k_shot_never_leaks_the_query_and_is_deterministic() -> None:
    task = synth(40, digits=1)  # 1-digit problems repeat: duplicates of the query must not be drawn either
    p = PromptConfig(style="k_shot", shots=5, seed=3)
    rs = render(task, p, range(40))
    for ex, r in zip(task.examples, rs, strict=True):
        lines = r.prompt.split("\n")
        assert len(lines) == 6 and lines[-1] == ex.input
        assert not any(line.startswith(ex.input) for line in lines[:-1]), r.prompt
        assert r.n_shots == 5
    assert rs == render(task, p, range(40))
    assert render(task, p, [17, 3]) == [rs[17], rs[3]]  # the same prompt whatever shard asks
    other = render(task, replace(p, seed=4), range(40))
    assert any(a.prompt != b.prompt for a, b in zip(rs, other, strict=True))


def test_duplicate_input_is_not_an_exemplar() -> None:
    task = replace(TOY, examples=(*TOY.examples, Example(2, "1+1?", ("2",))))
    for _ in range(3):
        assert one(task, PromptConfig(style="k_shot", shots=1, seed=_), 0).prompt.count("1+1?") == 1
    with pytest.raises(ConfigError, match=r"shots=2.*example 0"):
        one(task, PromptConfig(style="k_shot", shots=2), 0)


def _draw_by_copying(task: Task, prompt: PromptConfig, query: Example, need) -> list[Example]:
    """The draw as it was before the exemplar index (the pool copied for every query): the reference."""
    pool = [e for e in task.examples if e.idx != query.idx and e.input != query.input and need(e)]
    return random.Random(prompt.seed * 1_000_003 + query.idx).sample(pool, prompt.shots)


@pytest.mark.parametrize("shots", [1, 3, 8, 30])
def test_exemplar_draws_are_the_same_as_copying_the_pool(shots: int) -> None:
    """Drawing from a view over a list built once per task gives the exemplars the per-query copy gave, for
    small pools (random.sample copies them) and large ones (it indexes them), with repeated inputs and
    examples that lack reasoning or options."""
    examples = tuple(
        Example(i, f"{i % 23}+1?", (str(i % 23 + 1),), ("a", "b") if i % 3 else (), (1.0, 0.0) if i % 3 else (),
                reasoning="r" if i % 4 else None)
        for i in range(200)
    )
    tasks = [synth(120, digits=1), replace(TOY, examples=examples)]
    needs = {"any": lambda e: True, "reasoning": lambda e: bool(e.reasoning), "choices": lambda e: bool(e.choices)}
    for task in tasks:
        for seed in (0, 5):
            p = PromptConfig(style="k_shot", shots=shots, seed=seed)
            for ex in task.examples:
                for need, pred in needs.items():
                    assert _draw(task, p, ex, need=need) == _draw_by_copying(task, p, ex, pred), (task.name, ex.idx)


def test_exemplar_index_is_shared_by_an_unpickled_copy() -> None:
    """A Ray worker gets a fresh copy of the task for every shard: it finds the index built for the first."""
    task = synth(50)
    copy = pickle.loads(pickle.dumps(task))
    assert copy is not task and _index(copy) is _index(task)
    bare = replace(TOY, content_hash="")
    assert _index(bare) is _index(bare) and _index(replace(bare, name="other")) is not _index(bare)


# ---------------------------------------------------------------- truncation


def test_truncation_drops_last_exemplars_first() -> None:
    task = synth(4, digits=3)
    p = PromptConfig(style="k_shot", shots=3, max_new_tokens=4)
    full = one(task, p, 0)
    shots = full.prompt.split("\n")[:-1]
    query = task.examples[0].input
    one_shot = f"{shots[0]}\n{query}"
    r = one(task, p, 0, count_tokens=len, max_tokens=len(one_shot) + 4)
    assert r.prompt == one_shot and r.n_shots == 1 and r.shots_dropped == 2
    r = one(task, p, 0, count_tokens=len, max_tokens=len(one_shot) + 3)
    assert r.prompt == query and r.n_shots == 0 and r.shots_dropped == 3
    r = one(task, p, 0, count_tokens=len, max_tokens=len(full.prompt) + 4)
    assert r == full


def test_truncation_never_cuts_the_query() -> None:
    task = synth(10)
    r = one(task, PromptConfig(style="k_shot", shots=4), 2, count_tokens=len, max_tokens=3)
    assert r.prompt == task.examples[2].input and r.shots_dropped == 4 and r.n_shots == 0


def test_truncation_budget_counts_longest_option_when_scoring() -> None:
    p = PromptConfig(style="multiple_choice", shots=1, max_new_tokens=1)
    zero = one(MC, replace(p, shots=0), 1).prompt
    longest = max(len(c) for c in MC.examples[1].choices)
    assert one(MC, p, 1, count_tokens=len, max_tokens=len(zero) + longest).shots_dropped == 1
    assert one(MC, p, 1, count_tokens=len, max_tokens=len(zero) + longest - 1).prompt == zero


# ---------------------------------------------------------------- style errors


@pytest.mark.parametrize(
    ("task", "prompt", "match"),
    [
        (TOY, PromptConfig(style="multiple_choice"), "multiple_choice"),
        (TOY, PromptConfig(style="k_shot", shots=2), "shots=2"),
        (TOY, PromptConfig(style="k_shot", shots=0), "shots"),
        (TOY, PromptConfig(style="template"), "template"),
        (TOY, PromptConfig(style="template", template="{question}"), r"\{question\}"),
        (TOY, PromptConfig(style="template", template="{input} {choices}"), "choices"),
        (TOY, PromptConfig(style="chat"), "chat"),
        (TOY, PromptConfig(style="few_shot"), "few_shot"),
        (MC, PromptConfig(style="multiple_choice", mc_format="words"), "mc_format"),
    ],
)
def test_style_that_cannot_apply_is_a_config_error(task: Task, prompt: PromptConfig, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        render(task, prompt, [0])


def test_letters_limit() -> None:
    many = tuple(f"o{i}" for i in range(27))
    task = Task("big", "test", (Example(0, "q", ("o0",), many, (1.0,) + (0.0,) * 26),))
    with pytest.raises(ConfigError, match="mc_format=loglik"):
        render(task, PromptConfig(style="multiple_choice", mc_format="letters"), [0])


def test_unknown_index() -> None:
    with pytest.raises(ValueError, match="idx 9"):
        render(TOY, PromptConfig(), [9])


# ---------------------------------------------------------------- extract_answer

REGEX = replace(TOY, output_regex=r"[-+]?\d+")
DEFAULT_REGEX = replace(TOY, output_regex=DEFAULT_OUTPUT_REGEX)
COT = PromptConfig(style="chain_of_thought")


@pytest.mark.parametrize(
    ("generation", "task", "prompt", "answer"),
    [
        ("  42 \nQ: next", TOY, PromptConfig(), "42"),
        ("\n42\nmore", TOY, PromptConfig(), "42"),  # a stop at the very start does not empty the answer
        ("The sum is -12 or so", REGEX, PromptConfig(), "-12"),
        ("no digits", REGEX, PromptConfig(), ""),
        ("is blue, surely", replace(TOY, output_regex=r"is (\w+)"), PromptConfig(), "blue"),
        ("finding nemo. Or not", DEFAULT_REGEX, PromptConfig(), "finding nemo"),
        (" 5.\nthen", replace(TOY, stop=(".",)), PromptConfig(), "5"),
        ("Ones: 2+4=6. So 12+34=46. The answer is 46.\n\n56+78=", BARE, COT, "46"),
        ("The answer is 5.\n\nQ: x. The answer is 6.", TOY, COT, "5"),
        ("the answer is 3.5.", TOY, COT, "3.5"),
        ("The answer is: 579 apples.", REGEX, COT, "579"),
        ("The answer is finding nemo.", DEFAULT_REGEX, COT, "finding nemo"),
        ("so: #### 17 (answer is 3)", TOY, replace(COT, answer_pattern=r"#### (\d+)"), "17"),
        ("first 12, then 15 remain", TOY, COT, "15"),
        ("we get -7 overall", REGEX, COT, "-7"),
        ("I think it's nemo", DEFAULT_REGEX, COT, "I think it's nemo"),
        (" B. because", MC, PromptConfig(style="multiple_choice", mc_format="letters"), "B"),
        ("(C)", MC, PromptConfig(style="multiple_choice", mc_format="letters"), "C"),
        ("none of them", MC, PromptConfig(style="multiple_choice", mc_format="letters"), "none of them"),
    ],
)
def test_extract_answer(generation: str, task: Task, prompt: PromptConfig, answer: str) -> None:
    assert extract_answer(generation, task, prompt) == answer


def test_check_finds_a_style_that_cannot_apply_before_any_model_runs() -> None:
    check(TOY, PromptConfig(style="chat"))  # the chat template comes from the backend later
    check(MC, PromptConfig(style="multiple_choice", mc_format="letters", shots=1))
    with pytest.raises(ConfigError, match=r"^prompts\.mc on task 'toy': .*multiple_choice"):
        check(TOY, PromptConfig(style="multiple_choice"), label="prompts.mc")
    half = replace(TOY, examples=(*TOY.examples, Example(2, "3+3?", ("6",))))  # example 2 has no reasoning
    with pytest.raises(ConfigError, match="example 0"):  # only example 1 can be its exemplar, 2 wanted
        check(half, PromptConfig(style="chain_of_thought", shots=2))
