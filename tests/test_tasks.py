"""Task sources: real BIG-bench files through several URL kinds, synthetic determinism, JSONL, malformed files."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace
from pathlib import Path

import fsspec
import pytest

from orchestrator.config import ConfigError, TaskConfig
from orchestrator.tasks import TaskError, load_task, sample_examples, synthetic
from orchestrator.tasks.arithmetic import problem
from orchestrator.tasks.bigbench import DEFAULT_OUTPUT_REGEX, KNOWN_METRICS
from orchestrator.tasks.task import content_hash

BIGBENCH = Path(__file__).resolve().parents[1].parent / "shared" / "bigbench"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def bb() -> Path:
    """The shared BIG-bench files; tests that need them skip where the folder is absent."""
    if not (BIGBENCH / "emoji_movie" / "task.json").exists():
        pytest.skip(f"BIG-bench task files not found at {BIGBENCH} (shared/ is not checked out beside the repo)")
    return BIGBENCH


def bigbench(url: str, **kw) -> TaskConfig:
    return TaskConfig(source="bigbench", url=url, **kw)


def mem_url(name: str = "task.json") -> str:
    """A fresh memory:// location so tests never see each other's files."""
    return f"memory://tasks-{uuid.uuid4().hex}/{name}"


def write(url: str, text: str) -> str:
    with fsspec.open(url, "w", encoding="utf-8") as f:
        f.write(text)
    return url


def write_task(examples: list, **fields) -> str:
    """A minimal valid BIG-bench task.json in memory, with `examples` and any top-level overrides."""
    data = {"name": "t", "description": "d", "keywords": [], "metrics": ["exact_str_match"], "examples": examples}
    data.update(fields)
    return write(mem_url(), json.dumps(data))


# ---------------------------------------------------------------- real BIG-bench files


def test_emoji_movie_has_both_formats(bb: Path) -> None:
    task = load_task("emoji", bigbench(str(bb / "emoji_movie")))
    assert len(task.examples) == 100
    first = task.examples[0]
    assert first.idx == 0 and first.targets == ("finding nemo",)
    assert first.choices[0] == "finding nemo" and len(first.choices) == 5  # file order kept
    assert first.choice_scores == (1.0, 0.0, 0.0, 0.0, 0.0)
    assert all(len(ex.choices) == 5 and sum(ex.choice_scores) == 1.0 for ex in task.examples)
    assert all(ex.targets[0] in ex.choices for ex in task.examples)
    assert [ex.idx for ex in task.examples] == list(range(100))
    assert task.metrics == ("multiple_choice_grade", "rouge", "bleu", "exact_str_match")
    assert task.preferred_score == "multiple_choice_grade"
    assert task.append_choices_to_input is True
    # neither output_regex nor stop_string in the file: BIG-bench's default regex applies
    assert task.output_regex == DEFAULT_OUTPUT_REGEX
    assert task.example_input_prefix == "\nQ: " and task.example_output_prefix == "\nA: "
    assert task.source == str(bb / "emoji_movie" / "task.json")
    assert task.content_hash and task.content_hash == content_hash(task)


def test_arithmetic_3_digit_addition_file_and_folder(bb: Path) -> None:
    folder = load_task("add3", bigbench(str(bb / "arithmetic" / "3_digit_addition")))
    file = load_task("add3", bigbench(str(bb / "arithmetic" / "3_digit_addition" / "task.json")))
    assert folder.content_hash == file.content_hash
    assert len(folder.examples) == 1000
    ex = folder.examples[0]
    assert ex.input == "What is 161 plus 390?" and ex.targets == ("551",)
    assert ex.choices == ("305", "908", "5", "16957", "banana", "house", "551")
    assert ex.choice_scores[-1] == 1.0
    assert folder.output_regex == r"[-+]?\d+"
    assert folder.metrics == ("exact_str_match", "multiple_choice_grade")


def test_same_task_through_file_url_plain_path_and_memory(bb: Path) -> None:
    path = bb / "arithmetic" / "3_digit_addition" / "task.json"
    plain = load_task("a", bigbench(str(path)))
    file_url = load_task("a", bigbench(path.as_uri()))
    mem = write(mem_url(), path.read_text(encoding="utf-8"))
    memory = load_task("a", bigbench(mem))
    assert plain.content_hash == file_url.content_hash == memory.content_hash
    assert file_url.source == path.as_uri() and memory.source == mem
    assert plain.examples == memory.examples


def test_parent_task_without_subtask_lists_subtasks(bb: Path) -> None:
    with pytest.raises(TaskError) as err:
        load_task("modarith", bigbench(str(bb / "modified_arithmetic")))
    msg = str(err.value)
    assert "parent task" in msg and "tasks.modarith.subtask=" in msg
    for sub in ("three_digit_addition_control", "three_digit_addition_plus_one", "two_digit_multiplication_plus_one"):
        assert sub in msg


def test_subtask_of_parent_task(bb: Path) -> None:
    task = load_task("plus1", bigbench(str(bb / "modified_arithmetic"), subtask="three_digit_addition_plus_one"))
    assert task.source.endswith("modified_arithmetic/three_digit_addition_plus_one/task.json")
    assert len(task.examples) == 1000
    assert task.example_input_prefix == "" and task.example_output_prefix == " "
    assert task.few_shot_example_separator == "\n\n"
    assert task.examples[0].targets == ("681",) and task.examples[0].choices == ()
    control = load_task("ctl", bigbench(str(bb / "modified_arithmetic"), subtask="three_digit_addition_control"))
    assert control.examples[0].targets == ("680",)
    assert control.content_hash != task.content_hash


def test_parent_task_in_memory_and_unknown_subtask(bb: Path) -> None:
    root = f"memory://bb-{uuid.uuid4().hex}/modified_arithmetic"
    write(f"{root}/task.json", (bb / "modified_arithmetic" / "task.json").read_text(encoding="utf-8"))
    for sub in ("b_sub", "a_sub"):
        sub_task = {"name": sub, "metrics": [], "examples": [{"input": "x", "target": "y"}]}
        write(f"{root}/{sub}/task.json", json.dumps(sub_task))
    with pytest.raises(TaskError, match=r"subtasks a_sub, b_sub; pick one with tasks\.m\.subtask=a_sub"):
        load_task("m", bigbench(root))
    assert load_task("m", bigbench(root, subtask="b_sub")).source == f"{root}/b_sub/task.json"
    with pytest.raises(TaskError, match=r"no subtask 'c_sub'.*subtasks: a_sub, b_sub"):
        load_task("m", bigbench(root, subtask="c_sub"))


def test_subtask_on_a_task_with_examples_is_an_error(bb: Path) -> None:
    with pytest.raises(TaskError, match=r"remove tasks\.e\.subtask"):
        load_task("e", bigbench(str(bb / "emoji_movie"), subtask="x"))


def is_ordered_subset(part: tuple, whole: tuple) -> bool:
    """`part` holds distinct members of `whole`, in `whole`'s order."""
    where = [whole.index(ex) for ex in part]
    return where == sorted(set(where))


@pytest.mark.parametrize("folder", ["emoji_movie", "arithmetic/3_digit_addition", "periodic_elements/subtask_1"])
def test_limit_is_a_seeded_sample_in_file_order(bb: Path, folder: str) -> None:
    full = load_task("t", bigbench(str(bb / folder)))
    five = load_task("t", bigbench(str(bb / folder), limit=5))
    assert len(five.examples) == 5 and is_ordered_subset(five.examples, full.examples)
    assert five.examples != full.examples[:5]  # not the file's first examples
    assert load_task("t", bigbench(str(bb / folder), limit=5)).examples == five.examples  # deterministic
    draws = {tuple(ex.idx for ex in load_task("t", bigbench(str(bb / folder), limit=5, seed=s)).examples)
             for s in range(5)}
    assert len(draws) == 5  # the seed decides the sample
    # which examples run is part of the task's identity, so of every cell and shard id
    ids = {full.id, five.id, load_task("t", bigbench(str(bb / folder), limit=5, seed=1)).id,
           load_task("t", bigbench(str(bb / folder), limit=6)).id}
    assert len(ids) == 4
    assert load_task("t", bigbench(str(bb / folder), limit=10**6)).examples == full.examples


def test_limit_sample_is_unbiased_on_an_ordered_file() -> None:
    """A file ordered by kind (like BIG-bench's IPA task, 18 of its first 20 one way): the first 20 hold no IPA
    example; seeded samples hold 10% on average, as the file does."""
    examples = [{"input": f"English: s{i}", "target": f"ipa{i}"} for i in range(180)]
    examples += [{"input": f"IPA: s{i}", "target": f"eng{i}"} for i in range(20)]
    url = write_task(examples)
    full = load_task("t", bigbench(url)).examples
    assert load_task("t", bigbench(url, limit=20, seed=7)).examples == sample_examples(full, 20, seed=7)
    shares = [sum(ex.input.startswith("IPA") for ex in sample_examples(full, 20, seed=s)) / 20 for s in range(200)]
    assert abs(sum(shares) / len(shares) - 0.10) < 0.02


def test_limit_is_stratified_by_subtask() -> None:
    """Each subtask keeps its share: 90 / 10 examples, limit 10 -> 9 / 1, whatever the seed or the file order."""
    lines = [json.dumps({"input": f"a{i}", "target": "x", "subtask": "a"}) for i in range(90)]
    lines += [json.dumps({"input": f"b{i}", "target": "y", "subtask": "b"}) for i in range(10)]
    for order in (lines, lines[::-1]):
        url = write(mem_url("t.jsonl"), "\n".join(order) + "\n")
        for seed in range(4):
            kept = load_task("t", jsonl(url, limit=10, seed=seed)).examples
            assert sorted(ex.subtask for ex in kept) == ["a"] * 9 + ["b"], seed
    # largest remainders: 3 subtasks of 5, 3, 2 -> limit 5 gives 2.5, 1.5, 1 -> 3, 1, 1 (tie to the first seen)
    sizes = {"p": 5, "q": 3, "r": 2}
    rows = [json.dumps({"input": f"{s}{i}", "target": "t", "subtask": s}) for s, n in sizes.items() for i in range(n)]
    url = write(mem_url("t.jsonl"), "\n".join(rows) + "\n")
    kept = load_task("t", jsonl(url, limit=5)).examples
    assert {s: sum(ex.subtask == s for ex in kept) for s in sizes} == {"p": 3, "q": 1, "r": 1}


def test_sample_examples_synthetic_and_errors() -> None:
    task = synthetic.generate("s", "addition", 3, 50, seed=0)
    kept = sample_examples(task.examples, 7, seed=3)
    assert len(kept) == 7 and is_ordered_subset(kept, task.examples)
    assert sample_examples(task.examples, 7, seed=3) == kept
    assert load_task("s", synth(n=50, seed=0, limit=7)).content_hash != load_task("s", synth(n=50, seed=0)).content_hash
    with pytest.raises(ValueError, match="limit=0"):
        sample_examples(task.examples, 0, seed=0)
    with pytest.raises(ConfigError, match=r"tasks\.s\.limit=0"):
        load_task("s", synth(limit=0))


def test_a_task_without_subtasks_keeps_its_content_hash() -> None:
    """Example.subtask is left out of the hash when unset, so adding the field changed no existing shard id."""
    import hashlib
    from dataclasses import asdict

    task = load_task("s", synth(n=5))
    payload = asdict(task)
    payload.pop("content_hash")
    payload.pop("source")
    for ex in payload["examples"]:
        del ex["subtask"]
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=list)
    assert task.content_hash == hashlib.sha256(blob.encode("utf-8")).hexdigest()


def test_stop_override(bb: Path) -> None:
    task = load_task("e", bigbench(str(bb / "emoji_movie"), stop=[".", "\n"]))
    assert task.stop == (".", "\n")
    with pytest.raises(ConfigError, match=r"tasks\.e\.stop"):
        load_task("e", bigbench(str(bb / "emoji_movie"), stop=[""]))


# ---------------------------------------------------------------- content hash


def test_content_hash_stable_and_sensitive() -> None:
    examples = [{"input": "1+1?", "target": "2"}, {"input": "2+2?", "target": "4"}]
    a = load_task("t", bigbench(write_task(examples)))
    b = load_task("t", bigbench(write_task(examples)))
    assert a.content_hash == b.content_hash and len(a.content_hash) == 64  # source URL is not hashed
    changed_target = load_task("t", bigbench(write_task([examples[0], {"input": "2+2?", "target": "5"}])))
    changed_prefix = load_task("t", bigbench(write_task(examples, example_output_prefix="\nAnswer: ")))
    reordered = load_task("t", bigbench(write_task(examples[::-1])))
    hashes = {a.content_hash, changed_target.content_hash, changed_prefix.content_hash, reordered.content_hash}
    assert len(hashes) == 4
    assert content_hash(replace(a, stop=(".",))) != a.content_hash


# ---------------------------------------------------------------- BIG-bench semantics


def test_target_list_and_target_scores_only() -> None:
    url = write_task(
        [
            {"input": "q0", "target": ["a", "b"]},
            {"input": "q1", "target_scores": {"x": 0, "y": 1, "z": 1}},
            {"input": "q2", "target": 7},
        ],
        metrics=[],
        stop_string=".",
        task_prefix="P\n",
        few_shot_example_separator="\n\n",
        append_choices_to_input=False,
        choice_prefix=" | ",
    )
    task = load_task("t", bigbench(url))
    assert task.examples[0].targets == ("a", "b")
    # BIG-bench: with only target_scores, the target is the first option with the top score
    assert task.examples[1].targets == ("y",) and task.examples[1].choices == ("x", "y", "z")
    assert task.examples[2].targets == ("7",)
    assert task.stop == (".",) and task.output_regex is None  # a stop_string switches the default regex off
    assert task.task_prefix == "P\n" and task.few_shot_example_separator == "\n\n"
    assert task.append_choices_to_input is False and task.choice_prefix == " | "


def test_known_metrics_match_bigbench() -> None:
    for name in (
        "exact_str_match",
        "multiple_choice_grade",
        "rouge",
        "bleu",
        "bleurt",
        "log_likelihood",
        "calibration_multiple_choice_brier_score",
        "expected_calibration_error",
        "macro_f1",
        "sequence_f1",
        "numeric_match_with_0_1_relative_error",
        "case_insensitive_str_match",
    ):
        assert name in KNOWN_METRICS
    url = write_task([{"input": "q", "target": "a", "target_scores": {"a": 1, "b": 0}}], metrics=list(KNOWN_METRICS))
    assert load_task("t", bigbench(url)).metrics == KNOWN_METRICS


# ---------------------------------------------------------------- malformed files


def expect_error(url: str, *parts: str) -> str:
    """Load `url`, expect a TaskError naming the file and each of `parts`; return the message."""
    with pytest.raises(TaskError) as err:
        load_task("t", bigbench(url))
    msg = str(err.value)
    assert url in msg, msg
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    return msg


def test_task_error_is_a_value_error() -> None:
    assert issubclass(TaskError, ValueError)


def test_bad_json_names_line_and_column() -> None:
    url = write(mem_url(), '{\n  "name": "t",\n  "examples": [\n    {"input": "q" "target": "a"}\n  ]\n}')
    expect_error(url, "invalid JSON", "line 4", "column 19")


def test_missing_file() -> None:
    expect_error(mem_url(), "no such file")


def test_no_examples() -> None:
    expect_error(write_task([]), "'examples'", "empty")


def test_example_without_input() -> None:
    expect_error(write_task([{"input": "q", "target": "a"}, {"target": "b"}]), "example 1", "'input'")


def test_example_input_not_a_string() -> None:
    expect_error(write_task([{"input": ["q"], "target": "a"}]), "example 0", "'input'", "string")


def test_example_without_target_or_target_scores() -> None:
    bad = [{"input": "q0", "target": "a"}, {"input": "q1", "target": "b"}, {"input": "q2"}]
    expect_error(write_task(bad, metrics=[]), "example 2", "'target'", "'target_scores'")


def test_target_scores_not_a_dict() -> None:
    bad = [{"input": "q", "target": "a", "target_scores": ["a", "b"]}]
    expect_error(write_task(bad), "example 0", "'target_scores'")


def test_target_scores_not_numbers() -> None:
    bad = [{"input": "q0", "target": "a"}, {"input": "q1", "target": "a", "target_scores": {"a": "1", "b": 0}}]
    expect_error(write_task(bad), "example 1", "'target_scores'", "'a'", "not a number")


def test_target_scores_without_a_correct_option() -> None:
    bad = [{"input": "q", "target_scores": {"a": 0, "b": 0}}]
    expect_error(write_task(bad, metrics=["multiple_choice_grade"]), "example 0", "'target_scores'", "correct")


def test_unknown_metric() -> None:
    url = write_task([{"input": "q", "target": "a"}], metrics=["exact_match"])
    msg = expect_error(url, "'metrics'", "'exact_match'")
    assert "exact_str_match" in msg  # the message lists the names BIG-bench knows


def test_multiple_choice_metric_needs_target_scores() -> None:
    bad = [{"input": "q0", "target_scores": {"a": 1, "b": 0}}, {"input": "q1", "target": "a"}]
    expect_error(write_task(bad, metrics=["multiple_choice_grade"]), "example 1", "'target_scores'")


def test_generative_metric_needs_target() -> None:
    bad = [{"input": "q0", "target": "a"}, {"input": "q1", "target_scores": {"a": 1, "b": 0}}]
    expect_error(write_task(bad, metrics=["exact_str_match"]), "example 1", "'target'")


def test_bad_output_regex_and_preferred_score() -> None:
    expect_error(write_task([{"input": "q", "target": "a"}], output_regex="(["), "'output_regex'")
    # two groups: the first match would be a tuple, not an answer
    expect_error(write_task([{"input": "q", "target": "a"}], output_regex=r"(\w+) is (\d+)"), "2 capturing groups")
    expect_error(write_task([{"input": "q", "target": "a"}], preferred_score="rouge"), "'preferred_score'")


# ---------------------------------------------------------------- synthetic


def synth(generator: str = "addition", digits: int = 3, n: int = 20, seed: int = 0, **kw) -> TaskConfig:
    return TaskConfig(source="synthetic", generator=generator, digits=digits, n=n, seed=seed, **kw)


def test_synthetic_is_deterministic_and_prefix_stable() -> None:
    a, b = load_task("s", synth()), load_task("s", synth())
    assert a == b
    longer = load_task("s", synth(n=50))
    assert longer.examples[:20] == a.examples  # the first k examples do not depend on n
    assert load_task("s", synth(seed=1)).examples != a.examples
    assert a.source == "synthetic:addition:3:0:20"


def test_synthetic_problems_are_arithmetic_problem_with_random_seed() -> None:
    task = load_task("s", synth(generator="multiplication", digits=2, n=10, seed=7))
    rng = random.Random(7)
    expected = [problem(rng, "multiplication", 2) for _ in range(10)]
    assert [(ex.input, ex.targets[0]) for ex in task.examples] == expected


def test_modified_generators_add_one_to_the_same_problems() -> None:
    for op in ("addition", "subtraction", "multiplication"):
        control = load_task("c", synth(generator=op, n=30))
        plus = load_task("p", synth(generator=f"modified_{op}", n=30))
        for c, p in zip(control.examples, plus.examples, strict=True):
            assert c.input == p.input and int(p.targets[0]) == int(c.targets[0]) + 1


def test_synthetic_formatting_fields() -> None:
    task = load_task("s", synth())
    assert (task.example_input_prefix, task.example_output_prefix, task.few_shot_example_separator) == ("", "", "\n")
    assert task.stop == ("\n",) and task.append_choices_to_input is False
    assert "exact_str_match" in task.metrics and task.preferred_score == "exact_str_match"


@pytest.mark.parametrize("generator", sorted(synthetic.GENERATORS))
@pytest.mark.parametrize("digits", [1, 2, 5])
def test_synthetic_reasoning_and_options(generator: str, digits: int) -> None:
    task = load_task("s", synth(generator=generator, digits=digits, n=40))
    for ex in task.examples:
        answer = ex.targets[0]
        assert ex.reasoning and "\n" not in ex.reasoning
        assert ex.reasoning.endswith(f"={answer}.")  # the worked solution ends at the answer
        assert len(ex.choices) == 4 == len(set(ex.choices)) and answer in ex.choices
        assert ex.choice_scores[ex.choices.index(answer)] == 1.0 and sum(ex.choice_scores) == 1.0
        if not generator.endswith("subtraction") and int(answer) >= 0:
            assert all(int(c) >= 0 for c in ex.choices)
    positions = {ex.choices.index(ex.targets[0]) for ex in task.examples}
    assert len(positions) > 1  # the answer is not always in the same place


def test_synthetic_reasoning_is_digit_by_digit() -> None:
    assert synthetic.reasoning(58, 67, "addition") == (
        "Ones: 8+7=15, write 5 carry 1. Tens: 5+6+1=12, write 2 carry 1. "
        "The last carry 1 is the leading digit. So 58+67=125."
    )
    assert synthetic.reasoning(52, 38, "subtraction") == (
        "Ones: 2-8 is negative, borrow 10: 12-8=4, write 4. Tens: 5-3-1=1, write 1. So 52-38=14."
    )
    assert synthetic.reasoning(12, 34, "multiplication", offset=1) == (
        "12*4=48. 12*3=36, shifted 1 place: 360. Add the partial products: 48+360=408. "
        "So 12*34=408. The rule adds 1: 408+1=409."
    )


def test_synthetic_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"tasks\.s\.generator='division'"):
        load_task("s", synth(generator="division"))
    with pytest.raises(ConfigError, match=r"tasks\.s\.digits=6"):
        load_task("s", synth(digits=6))
    with pytest.raises(ConfigError, match=r"tasks\.s\.subtask"):
        load_task("s", synth(subtask="x"))
    with pytest.raises(ConfigError, match=r"tasks\.s\.source='csv'"):
        load_task("s", TaskConfig(source="csv"))


# ---------------------------------------------------------------- JSONL


def jsonl(url: str, **kw) -> TaskConfig:
    return TaskConfig(source="jsonl", url=url, **kw)


def test_jsonl_fixture() -> None:
    task = load_task("capitals", jsonl(str(FIXTURES / "capitals.jsonl")))
    assert len(task.examples) == 8  # the blank line is skipped
    assert [ex.idx for ex in task.examples] == list(range(8))
    fr, jp, it = task.examples[:3]
    assert fr.targets == ("Paris",) and fr.choices == ("Lyon", "Paris", "Marseille", "Nice")
    assert fr.choice_scores == (0.0, 1.0, 0.0, 0.0)
    assert jp.targets == ("Tokyo", "Tōkyō") and jp.choice_scores == (0.0, 0.0, 1.0, 1.0)
    assert it.reasoning == "Italy's government sits in Rome." and all(ex.reasoning for ex in task.examples)
    assert task.metrics == ("exact_str_match", "multiple_choice_grade")
    assert task.preferred_score == "multiple_choice_grade"
    assert task.example_input_prefix == "\nQ: "  # BIG-bench defaults
    two = load_task("capitals", jsonl(str(FIXTURES / "capitals.jsonl"), limit=2)).examples
    assert len(two) == 2 and all(ex in task.examples for ex in two)


def test_jsonl_generative_only() -> None:
    url = write(mem_url("t.jsonl"), '{"input": "a", "target": "b"}\n{"input": "c", "target": ["d", "e"]}\n')
    task = load_task("t", jsonl(url))
    assert task.metrics == ("exact_str_match",) and not task.has_choices
    assert task.examples[1].targets == ("d", "e")


@pytest.mark.parametrize(
    ("lines", "parts"),
    [
        (['{"input": "a", "target": "b"}', '{"input": "a" "target": "b"}'], ["line 2", "example 1", "column 15"]),
        (['{"target": "b"}'], ["line 1", "example 0", "'input'"]),
        (['{"input": "a"}'], ["example 0", "'target'"]),
        (['{"input": "a", "target": []}'], ["example 0", "'target'"]),
        (['{"input": "a", "target": "b", "choices": ["x", "y"]}'], ["example 0", "'target'", "not one of the choices"]),
        (['{"input": "a", "target": "b", "choices": "b"}'], ["example 0", "'choices'"]),
        (['{"input": "a", "target": "b", "choice": ["b", "c"]}'], ["example 0", "'choice'", "unknown"]),
        (['{"input": "a", "target": "b", "subtask": ""}'], ["example 0", "'subtask'", "non-empty string"]),
        (["", '{"input": "a", "target": "b"}', '["a"]'], ["line 3", "example 1", "JSON object"]),
    ],
)
def test_jsonl_errors(lines: list[str], parts: list[str]) -> None:
    url = write(mem_url("t.jsonl"), "\n".join(lines) + "\n")
    with pytest.raises(TaskError) as err:
        load_task("t", jsonl(url))
    msg = str(err.value)
    assert url in msg
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"


def test_jsonl_empty_file() -> None:
    with pytest.raises(TaskError, match="no examples"):
        load_task("t", jsonl(write(mem_url("t.jsonl"), "\n\n")))
