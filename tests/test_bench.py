"""The bench's machinery without lm-evaluation-harness: comparison, time split, BENCHMARKS.md rows, and the
driver's phase timings of a real (tiny) sweep read back as the bench reads them. No timing assertions: the
speed figures belong in BENCHMARKS.md."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench import rows as bench_rows
from bench import side_by_side as sbs
from orchestrator.timing import Timings, collect, lap, serving

KEY = ("zoo-3k", "add_3", "zero_shot", 7)


def _outputs() -> dict:
    return {
        KEY: sbs.Output("964+494=", "1458", True),
        ("zoo-3k", "add_3", "zero_shot", 8): sbs.Output("876+530=", "14", False),
    }


def test_identical_outputs_agree():
    assert sbs.compare(_outputs(), _outputs()) == []


@pytest.mark.parametrize("change, what", [
    ({"generation": "1459"}, "generation"),
    ({"prompt": "\nQ: 964+494=\nA: "}, "prompt"),
    ({"exact_match": False}, "exact_match"),
])
def test_a_difference_in_one_example_is_named_with_its_cell(change, what):
    theirs = _outputs()
    theirs[KEY] = sbs.Output(**{**theirs[KEY].__dict__, **change})
    found = sbs.compare(_outputs(), theirs)
    assert [(d.key, d.what) for d in found] == [(KEY, what)]
    assert "zoo-3k x add_3 x zero_shot, example 7" in str(found[0])


def test_an_example_only_one_tool_has_is_a_disagreement():
    theirs = _outputs()
    del theirs[KEY]
    found = sbs.compare(_outputs(), theirs)
    assert [(d.key, d.what, d.lm_eval) for d in found] == [(KEY, "missing", "absent")]


def test_laps_add_up_to_the_wall_time_and_do_nothing_outside_a_sweep():
    lap("ignored")  # no active Timings: nothing booked anywhere
    serving("m", 1.0)
    with collect() as t:
        lap("plan")
        lap("execute")
        lap("plan")  # booked twice, summed
        serving("m", 2.0)
        serving("m", 0.5)  # replica-seconds per model add up
    assert set(t.seconds) == {"plan", "execute"} and t.counts == {"plan": 2, "execute": 1}
    assert math.isclose(sum(t.seconds.values()) + t.other, t.wall, rel_tol=1e-9, abs_tol=1e-9)
    lap("after")
    assert "after" not in t.seconds
    d = t.to_dict()
    assert set(d) == {"wall_seconds", "phases", "other_seconds", "counts", "serving_seconds"}
    assert d["serving_seconds"] == {"m": 2.5}


def _shard_rows() -> pd.DataFrame:
    """Two replicas of one model: replica a ran shards s1 (2 rows) and s2 (1 row), replica b ran s3 (1 row)."""
    return pd.DataFrame({
        "model": ["m"] * 4,
        "worker": ["a", "a", "a", "b"],
        "shard_id": ["s1", "s1", "s2", "s3"],
        "load_seconds": [2.0, 2.0, 2.0, 3.0],
        "shard_seconds": [5.0, 5.0, 4.0, 6.0],
        "generate_seconds": [1.0, 1.0, 1.5, 2.0],
        "score_seconds": [3.5, 3.5, 2.0, 3.0],
        "generation_token_ids": [[1, 2], [3], [], [4, 5, 6]],
        "n_prompt_tokens": [8, 8, 8, 8],
    })


def test_time_split_counts_each_load_once_per_replica_and_each_shard_once():
    timings = Timings(seconds={"startup": 6.0, "execute": 20.0, "score": 1.0}, wall=30.0).to_dict()
    split = sbs.time_split(32.0, timings, _shard_rows(), slots=2)
    assert split["load"] == 5.0 and split["inference"] == 15.0
    assert split["generate"] == 4.5 and split["score_ll"] == 8.5
    assert split["process"] == 2.0  # the command's wall beyond the run's own
    assert math.isclose(split["overhead_share"], 1 - 20.0 / 64.0)
    assert math.isclose(split["driver_share"], 12.0 / 32.0)
    assert sbs.model_loads(_shard_rows()) == {"m": 2} and sbs.reloads(_shard_rows()) == 0
    again = _shard_rows()
    again.loc[2, "load_seconds"] = 2.5  # replica a's shard s2 ran after the replica loaded its model again
    assert sbs.reloads(again) == 1
    held = sbs.time_split(32.0, {**timings, "serving_seconds": {"m": 20.0}}, _shard_rows(), slots=2)
    assert math.isclose(held["overhead:m"], 1 - 15.0 / 20.0)  # 15 s of shards in 20 replica-s held loaded
    handed = _shard_rows()
    handed.loc[2, ["model", "load_seconds"]] = ["n", 2.5]  # replica a went on to model n and loaded it once
    assert sbs.reloads(handed) == 0 and sbs.model_loads(handed) == {"m": 2, "n": 1}
    assert sbs.time_split(32.0, timings, handed, slots=2)["load"] == 7.5  # each model's load in a counted once
    tp = sbs.throughput(_shard_rows())["m"]
    assert tp["examples"] == 4 and math.isclose(tp["gen_tokens_per_s"], 6 / 4.5)


def test_rows_are_added_under_their_section_and_replaced_by_a_rerun():
    md = "# Benchmarks\n\nhand-written rows stay.\n"
    first = [bench_rows.Row("2026-12-01", "2 cores", "abc123", "add3", "wall", "orch 60 s | lm_eval 150 s"),
             bench_rows.Row("2026-12-01", "2 cores", "abc123", "add3", "loads", "7")]
    once = bench_rows.upsert(md, first)
    assert once.startswith(md.rstrip("\n")) and bench_rows.HEADING in once
    again = bench_rows.upsert(once, [bench_rows.Row("2026-12-01", "2 cores", "abc123", "add3", "wall", "orch 50 s")])
    body = again.split(bench_rows.BEGIN)[1].split(bench_rows.END)[0]
    parsed = [r for r in map(bench_rows.parse_row, body.splitlines()) if r]
    assert [(r.figure, r.value) for r in parsed] == [("wall", "orch 50 s"), ("loads", "7")]
    other_commit = bench_rows.upsert(again, [bench_rows.Row("2026-12-02", "2 cores", "def456", "add3", "wall", "x")])
    assert other_commit.count("| wall |") == 2 and other_commit.count(bench_rows.BEGIN) == 1
    assert bench_rows.parse_row(first[0].markdown()) == first[0]  # a value with | survives the round trip


@pytest.mark.integration
def test_a_tiny_sweep_writes_its_phases_and_the_bench_reads_its_store(tmp_path, tiny_conf):
    from orchestrator import sweep
    from orchestrator.config import load
    from orchestrator.execute import shutdown
    from tests.conftest import overrides_for

    task_files = sbs.export_tasks(tmp_path, ["add_3"])
    conf_task = tiny_conf / "task"
    conf_task.mkdir(parents=True, exist_ok=True)
    (conf_task / "bench_add_3.yaml").write_text(
        f"# @package tasks.bench_add_3\nsource: jsonl\nurl: {task_files['add_3']}\ninput_prefix: \"\"\n"
        "output_prefix: \"\"\n")
    cfg = load(overrides_for(tmp_path, tiny_conf, "model.sizes=[tiny-a]", "task=[bench_add_3]",
                             "prompt=[zero_shot]", "metrics.names=[exact_match]", "sweep.name=benchtiny",
                             "sweep.shard_size=100", "tracking=off", "cluster.num_cpus=2"))
    try:
        result = sweep.run(cfg, progress=False)
    finally:
        shutdown()
    written = json.loads((tmp_path / "outputs" / "benchtiny" / "timings.json").read_text())
    assert written == result.timings
    assert {"preflight", "plan", "store", "startup", "execute", "score", "analysis"} <= set(written["phases"])
    assert math.isclose(sum(written["phases"].values()) + written["other_seconds"], written["wall_seconds"],
                        abs_tol=1e-3)

    df = sbs.orchestrator_rows(tmp_path / "store" / "benchtiny")
    assert len(df) == 200 and set(df["task"]) == {"add_3"} and set(df["prompt_style"]) == {"zero_shot"}
    assert sbs.model_loads(df) == {"tiny-a": 1} and sbs.reloads(df) == 0  # one replica, one load, for 2 shards
    ours = sbs.orchestrator_outputs(df)
    assert ours[("tiny-a", "add_3", "zero_shot", 0)].prompt == sbs.render_prompts(task_files["add_3"], "add_3",
                                                                                     "zero_shot")[0]
    cell_em = sbs.cell_exact_match(ours)[("tiny-a", "add_3", "zero_shot")]
    assert cell_em == pytest.approx(result.cells[0].scores["exact_match"]["mean"])
    theirs = dict(ours)
    key = ("tiny-a", "add_3", "zero_shot", 5)
    theirs[key] = sbs.Output(ours[key].prompt, ours[key].generation + "9", ours[key].exact_match)
    assert [(d.key, d.what) for d in sbs.compare(ours, theirs)] == [(key, "generation")]
    split = sbs.time_split(result.timings["wall_seconds"] + 1.0, result.timings, df, slots=2)
    assert split["load"] > 0 and split["inference"] > 0 and 0 <= split["overhead_share"] <= 1
