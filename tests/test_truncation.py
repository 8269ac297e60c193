"""A prompt the model cannot read whole is flagged per example and counted per cell (cells.csv, MLflow).

Prompts drop exemplars first; a query still longer than the context loses its
first tokens in the backend. That used to be silent (README: "the query is
never cut").
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from orchestrator import sweep
from orchestrator.backends import load_backend
from orchestrator.config import BackendConfig, ModelFamily, ModelSize, PromptConfig, load
from orchestrator.execute import shutdown
from orchestrator.inference import run_shard
from orchestrator.plan import Cell, PromptStyle, Shard
from orchestrator.tasks.task import Example, Task, with_hash
from tests.conftest import overrides_for

LONG = "1+" * 101 + "1="  # 204 characters: longer than the zoo's whole context


def _task() -> Task:
    examples = (Example(0, LONG[1:], ("102",), ("102", "101")), Example(1, "2+2=", ("4",), ("4", "5")))
    return with_hash(Task(name="long", source="test", examples=examples, example_input_prefix="",
                          example_output_prefix="", append_choices_to_input=False))


@pytest.mark.parametrize("style", ["zero_shot", "multiple_choice"])
def test_an_over_long_query_is_cut_flagged_and_does_not_fail_its_shard(tiny_model, style):
    backend = load_backend(ModelSize(path=str(tiny_model), params=1), ModelFamily(family="zoo"),
                           BackendConfig(max_length=16), threads=1)
    task = _task()
    assert len(task.examples[0].input) == 203
    prompt = PromptConfig(style=style, max_new_tokens=4)
    cell = Cell(id="c", model=None, task="long", task_id=task.id, prompt=PromptStyle(style, prompt), n_examples=2)
    long, short = run_shard(backend, task, cell, Shard("s", "c", 0, 2))
    assert long["truncated"] and not short["truncated"]
    if style == "zero_shot":  # generated, and its targets and options scored from the cut prompt
        assert long["target_truncated"] == [True] and long["choice_truncated"] == [True, True]
    else:  # options only
        assert long["generated"] is False and long["choice_truncated"] == [True, True]
    assert short["target_truncated"] in ([False], []) and short["choice_truncated"] == [False, False]



@pytest.mark.integration
def test_truncated_examples_are_counted_in_cells_csv_and_mlflow(tmp_path, tiny_conf):
    data = tmp_path / "long.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"input": LONG, "target": "102"}, {"input": "2+2=", "target": "4"}, {"input": "3+3=", "target": "6"}]))
    (tiny_conf / "task").mkdir()
    (tiny_conf / "task" / "long.yaml").write_text(f"# @package tasks.long\nsource: jsonl\nurl: {data}\n")
    cfg = load(overrides_for(tmp_path, tiny_conf, "task=[long]", "prompt=[zero_shot]", "sweep.name=trunc",
                             "cluster.num_cpus=2", "backend.max_length=48"))
    try:
        result = sweep.run(cfg, progress=False)
    finally:
        shutdown()
    assert result.failed == {} and len(result.cells) == 2
    assert [c.truncated for c in result.cells] == [1, 1]
    table = pd.read_csv(tmp_path / "store" / "trunc" / "cells.csv")
    assert table["truncated"].tolist() == [1, 1] and table["shots_dropped"].tolist() == [0, 0]
    mlflow.set_tracking_uri(cfg.tracking.uri)
    runs = mlflow.search_runs(experiment_names=["trunc"], filter_string="tags.`orchestrator.kind` = 'cell'")
    assert runs["metrics.truncated"].tolist() == [1.0, 1.0]
