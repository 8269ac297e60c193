"""README's "Bring your own task and metric" runs as written: its files in a fresh folder, its command
verbatim, and the cell table it shows is what the zoo gives. Its record-fields table lists Record's fields.

The blocks are found by the HTML comments before them (`<!-- walkthrough:file PATH -->`,
`<!-- walkthrough:run -->`, `<!-- walkthrough:expect PATH -->`), so editing the README edits the test.
The zoo members the command names are built first when missing (zoo-3k and zoo-30k: about 4 minutes
once, then cached in ORCHESTRATOR_ZOO_DIR or ~/.cache/orchestrator/zoo); with them built the test
takes under a minute.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.record import Record
from tests.conftest import REPO

README = REPO / "README.md"
_BLOCK = re.compile(r"<!-- walkthrough:(file|run|expect)\s*([^>]*?)\s*-->\s*\n```[^\n]*\n(.*?)\n```", re.DOTALL)
_MEMBERS = re.compile(r"model\.sizes=\[([^\]]+)\]")


def walkthrough() -> tuple[dict[str, str], str, tuple[str, str]]:
    """(files by relative path, the command, (file it describes, expected table)) as README shows them."""
    files: dict[str, str] = {}
    runs: list[str] = []
    expects: list[tuple[str, str]] = []
    for kind, arg, body in _BLOCK.findall(README.read_text(encoding="utf-8")):
        if kind == "file":
            files[arg] = body + "\n"
        elif kind == "run":
            runs.append(body)
        else:
            expects.append((arg, body))
    assert files and len(runs) == 1 and len(expects) == 1, "README's walkthrough markers are missing or doubled"
    return files, runs[0], expects[0]


def parse_table(text: str) -> list[dict[str, str]]:
    """A whitespace-aligned table (header, then rows) as dicts."""
    header, *rows = [line.split() for line in text.splitlines() if line.strip()]
    assert all(len(r) == len(header) for r in rows), text
    return [dict(zip(header, r, strict=True)) for r in rows]


def test_walkthrough_blocks_are_well_formed():
    """The extraction itself: three files, a command naming them, a table with the metrics it asks for."""
    files, command, (expect_path, table) = walkthrough()
    assert set(files) == {"sums.jsonl", "conf/task/sums.yaml", "my_metrics.py"}
    assert files["conf/task/sums.yaml"].startswith("# @package tasks.sums\n")
    assert "orchestrator run" in command and "metrics.modules=[my_metrics]" in command
    rows = parse_table(table)
    assert expect_path.endswith("cells.csv") and {"exact_match", "same_length"} <= set(rows[0])


@pytest.mark.integration
def test_readme_walkthrough_runs_verbatim_and_gets_its_exact_match(tmp_path):
    files, command, (expect_path, table) = walkthrough()
    members = [m.strip() for m in _MEMBERS.search(command).group(1).split(",")]
    from orchestrator import zoo

    if not zoo.is_built(names=members):  # CI has no zoo: train just these (about 4 minutes), once
        zoo.build(names=members, progress=False)

    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ORCHESTRATOR_CONF", None)
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    with open(tmp_path / expect_path, newline="") as f:
        got = {row["model"]: row for row in csv.DictReader(f)}
    expected = parse_table(table)
    assert sorted(got) == sorted(r["model"] for r in expected)
    for row in expected:
        for col in ("n", "exact_match", "same_length"):
            assert float(got[row["model"]][col]) == pytest.approx(float(row[col]), abs=5e-4), (row["model"], col)
    # the point of the walkthrough: the zoo solves the task in its own frame, and README says so
    assert max(float(r["exact_match"]) for r in got.values()) == 1.0
    assert (tmp_path / "outputs" / "sums" / "report.html").exists()
    assert "same_length" in proc.stdout


def test_readme_lists_every_record_field_in_order():
    text = README.read_text(encoding="utf-8")
    assert "<!-- record-fields -->" in text
    section = text.split("<!-- record-fields -->", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \|", section.split("\n\n| field", 1)[-1].split("\n\n", 1)[0], re.MULTILINE)
    assert rows == Record.columns()


def test_a_task_yaml_without_its_package_line_is_refused_naming_the_file_and_the_line(tmp_path):
    from orchestrator.config import ConfigError, load

    (tmp_path / "conf" / "task").mkdir(parents=True)
    bad = tmp_path / "conf" / "task" / "mine.yaml"
    bad.write_text("source: jsonl\nurl: x.jsonl\n")
    with pytest.raises(ConfigError) as e:
        load([f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "task=[mine]"])
    assert str(bad) in str(e.value) and "# @package tasks.mine" in str(e.value)


def test_a_task_declares_its_own_prompt_frame(tmp_path):
    """input_prefix/output_prefix replace JSONL's BIG-bench frame for every style; unset, the frame is BIG-bench's."""
    from orchestrator import prompts
    from orchestrator.config import PromptConfig, TaskConfig
    from orchestrator.tasks import load_task

    f = tmp_path / "t.jsonl"
    f.write_text('{"input": "2+3=", "target": "5", "choices": ["5", "6"]}\n{"input": "1+1=", "target": "2"}\n')
    plain = load_task("t", TaskConfig(source="jsonl", url=str(f), input_prefix="", output_prefix="",
                                      append_choices=False))
    framed = load_task("t", TaskConfig(source="jsonl", url=str(f)))
    zero = PromptConfig(style="zero_shot")
    assert prompts.render(plain, zero, [0])[0].prompt == "2+3="
    assert prompts.render(framed, zero, [0])[0].prompt == "\nQ: 2+3=\n  choice: 6\n  choice: 5\nA: "
    assert prompts.render(plain, PromptConfig(style="k_shot", shots=1), [0])[0].prompt == "1+1=2\n2+3="
    assert plain.content_hash != framed.content_hash


def test_readme_template_quoting_gives_a_string_template():
    """README's forms as the shell hands them over: "{input}" in double quotes, and $'...' for a real newline."""
    from orchestrator.config import load

    for arg, want in (('prompts.template.template="{input}"', "{input}"),
                      ('prompts.template.template="Question: {input}\nAnswer:"', "Question: {input}\nAnswer:")):
        assert load(["prompt=[template]", arg]).prompts["template"].template == want
    text = README.read_text(encoding="utf-8")
    assert "'prompts.template.template=\"{input}\"'" in text
    assert "$'prompts.template.template=\"Question: {input}\\nAnswer:\"'" in text
