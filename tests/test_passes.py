"""Only the inference the metrics need runs (issue 12), and never at the cost of a wrong number.

Pure rules first (which metric needs which pass, how a file names its passes), then the real thing: a sweep
on a local Ray cluster with real tiny models and a real store, run with exact match only, then with a
log-likelihood metric added (its shards run again and their files are replaced), then rescored with a
metric whose pass never ran (refused, saying how to compute it).
"""

from __future__ import annotations

import math

import pytest

from orchestrator import passes, sweep
from orchestrator.config import ConfigError, load
from orchestrator.execute import shutdown
from orchestrator.metrics.registry import _REGISTRY
from orchestrator.passes import ALL, CHOICES, GENERATE, TARGETS
from orchestrator.scoring import score_cells
from orchestrator.store import SweepStore
from tests.conftest import overrides_for


def test_each_metric_asks_for_the_passes_its_fields_come_from():
    assert passes.of_metrics(["exact_match"]) == {GENERATE}
    assert passes.of_metrics(["token_edit_distance"]) == {GENERATE}
    assert passes.of_metrics(["target_logprob", "target_token_prob"]) == {TARGETS}
    assert passes.of_metrics(["multiple_choice_grade", "brier_score", "calibration_ece"]) == {CHOICES}
    # the default metrics need no option scoring
    assert passes.of_metrics(["exact_match", "token_edit_distance", "target_logprob"]) == {GENERATE, TARGETS}


def test_a_metric_that_names_no_pass_field_gets_every_pass():
    assert passes.of_fields(()) == ALL
    assert passes.of_fields(("targets", "choice_scores")) == ALL  # data fields only: it may read anything
    assert passes.of_fields(("generated", "targets")) == {GENERATE}


def test_file_suffix_round_trips_and_all_passes_keep_the_old_name():
    assert passes.file_suffix(ALL) == ""
    assert passes.parse_suffix("") == ALL
    for got in ({GENERATE}, {TARGETS, GENERATE}, {CHOICES}, {GENERATE, CHOICES}):
        suffix = passes.file_suffix(got)
        assert suffix.startswith(".") and passes.parse_suffix(suffix[1:]) == got
    assert passes.file_suffix({TARGETS, GENERATE}) == ".generate+targets"  # one fixed order
    assert passes.parse_suffix("generate+generate") is None
    assert passes.parse_suffix("tmp-123") is None  # not a pass list: not a shard file
    with pytest.raises(ValueError, match="unknown passes"):
        passes.file_suffix({"sample"})


def _ov(tmp_path, tiny_conf, *more):
    return overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=12",
                         "sweep.shard_size=6", "sweep.name=passes", "cluster.num_cpus=2", "backend.batch_size=8",
                         "tracking.enabled=false", *more)


@pytest.mark.integration
def test_a_sweep_runs_only_the_passes_its_metrics_need_and_adds_the_rest_later(tmp_path, tiny_conf):
    shards = tmp_path / "store" / "passes" / "shards"
    try:
        only_em = sweep.run(load(_ov(tmp_path, tiny_conf, "metrics.names=[exact_match]")), progress=False)
        names = sorted(p.name.split(".", 1)[1] for p in shards.glob("*.parquet"))
        assert names == ["generate.parquet"] * 4  # 2 sizes x 2 shards, generation only
        store = SweepStore(str(tmp_path / "store"), "passes")
        rows = store.read_shards(sorted(store.done())).to_dict("records")
        assert all(r["generated"] for r in rows)
        assert all(len(r["target_logprobs"]) == 0 and len(r["choice_logprobs"]) == 0 for r in rows)
        assert all(r["score_seconds"] < r["shard_seconds"] for r in rows)

        more = sweep.run(load(_ov(tmp_path, tiny_conf, "metrics.names=[exact_match,target_logprob]")),
                         progress=False)
        assert more.shards_run == 4 and more.shards_skipped == 0  # every shard lacked the targets' scores
        names = sorted(p.name.split(".", 1)[1] for p in shards.glob("*.parquet"))
        assert names == ["generate+targets.parquet"] * 4  # the old files are gone, not left beside the new

        again = sweep.run(load(_ov(tmp_path, tiny_conf, "metrics.names=[exact_match,target_logprob]")),
                          progress=False)
        assert again.shards_run == 0 and again.shards_skipped == 4  # nothing is recomputed by accident
    finally:
        shutdown()

    # the same numbers as a sweep that ran every pass
    (tmp_path / "full").mkdir()
    try:
        full = sweep.run(load(_ov(tmp_path / "full", tiny_conf,
                                  "metrics.names=[exact_match,target_logprob,multiple_choice_grade]")),
                         progress=False)
    finally:
        shutdown()
    assert sorted(p.name.split(".", 1)[1] for p in (tmp_path / "full" / "store" / "passes" / "shards").glob(
        "*.parquet")) == ["parquet"] * 4  # every pass: the plain name
    by_model = {c.model: c.scores for c in full.cells}
    for c in only_em.cells:
        assert c.scores["exact_match"]["mean"] == by_model[c.model]["exact_match"]["mean"]
        assert "target_logprob" not in c.scores
    for c in more.cells:
        assert c.scores["exact_match"]["mean"] == by_model[c.model]["exact_match"]["mean"]
        assert math.isclose(c.scores["target_logprob"]["mean"], by_model[c.model]["target_logprob"]["mean"],
                            rel_tol=1e-6)

    # a rescore asking for the options' scores, which never ran, is refused with the way to get them
    with pytest.raises(ConfigError, match="multiple_choice_grade.*answer options' log-likelihoods.*running the "
                                          "sweep again"):
        sweep.rescore(load(_ov(tmp_path, tiny_conf, "metrics.names=[exact_match,multiple_choice_grade]")))
    # so is a user's metric that does not say what it reads (it could read a field that was never filled)
    from orchestrator.metrics import metric

    @metric("passes_test_undeclared", kind="continuous", higher_is_better=True)
    def undeclared(records, ctx):
        return [1.0 for _ in records]

    try:
        with pytest.raises(ConfigError, match="passes_test_undeclared.*declares no record field it reads.*needs="):
            sweep.rescore(load(_ov(tmp_path, tiny_conf, "metrics.names=[exact_match,passes_test_undeclared]")))
    finally:
        _REGISTRY.pop("passes_test_undeclared")

    # a cell whose shards do not all hold a metric's pass does not score it from the ones that do
    one = sorted(shards.glob("*.parquet"))[0]
    one.rename(one.with_name(one.name.replace(".generate+targets.", ".generate.")))
    cfg = load(_ov(tmp_path, tiny_conf, "metrics.names=[exact_match,target_logprob]"))
    plan, tasks, store = sweep.prepare(cfg)
    cells = score_cells(plan, store, tasks, cfg.metrics)
    lacking = [c for c in cells if "target_logprob" not in c.scores]
    assert len(lacking) == 1 and "exact_match" in lacking[0].scores
