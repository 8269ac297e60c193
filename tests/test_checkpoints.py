"""Curves over another scale than parameters: analysis.x (non_embedding_params, train_flops, train_step).

A family whose members are checkpoints of one model (same params, different
train_step) gives a curve over training through the same machinery. The two
tiny models stand in for two checkpoints here: they differ in weights, which
is all the pipeline sees.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from orchestrator import sweep
from orchestrator.analysis.curves import CellResult, curves
from orchestrator.cli import main
from orchestrator.config import ConfigError, load
from orchestrator.execute import shutdown
from tests.conftest import overrides_for


def family_conf(tmp_path: Path, a: Path, b: Path, extra: str = "") -> Path:
    d = tmp_path / "conf" / "model"
    d.mkdir(parents=True)
    (d / "tiny.yaml").write_text(
        "family: tiny\nbuild: null\ncatalog:\n"
        f"  step-100: {{path: '{a}', params: 5000, train_step: 100, train_flops: 3.0e9{extra}}}\n"
        f"  step-200: {{path: '{b}', params: 5000, train_step: 200, train_flops: 6.0e9{extra}}}\n"
        "sizes: [step-100, step-200]\n"
    )
    return tmp_path / "conf"


def test_curves_read_the_chosen_scale():
    def cell(model, params, step):
        return CellResult("c" + model, model, params, "t", "p", 10, 0, {"exact_match": {"mean": step / 1000}},
                          non_embedding_params=params // 2, train_flops=params * 6e3, train_step=step)

    cells = [cell("late", 5000, 300), cell("early", 5000, 100)]
    info = {"exact_match": {"kind": "discontinuous", "higher_is_better": True}}
    (c,) = curves(cells, info, x="train_step")
    assert c.x == (100.0, 300.0) and c.models == ("early", "late") and c.x_name == "train_step"
    assert c.x_label == "training step"
    (f,) = curves(cells[:1], info, x="train_flops")
    assert f.x == (5000 * 6e3,) and f.x_label == "training FLOPs"


@pytest.mark.parametrize(
    "more, message",
    [
        (["analysis.x=bogus"], "analysis.x='bogus' is unknown; use one of params, non_embedding_params"),
        (["analysis.x=non_embedding_params"], "declare no non_embedding_params; set model.catalog.step-100"),
        ([], "sizes 'step-100' and 'step-200' share params=5000.*use analysis.x=train_step"),
        (["analysis.x=train_step", "model.catalog.step-200.train_step=100"], "share train_step=100"),
        (["analysis.x=train_step", "model.catalog.step-200.train_step=0"], "train_step must be > 0"),
    ],
)
def test_a_scale_that_cannot_be_an_x_axis_is_a_config_error(tmp_path, more, message):
    conf = family_conf(tmp_path, tmp_path / "a", tmp_path / "b")
    with pytest.raises(ConfigError, match=message):
        load(overrides_for(tmp_path, conf, *more))


@pytest.mark.integration
def test_a_sweep_over_checkpoints_gives_curves_and_mlflow_charts_over_training_steps(
    tmp_path, tiny_model, tiny_model_b, capsys
):
    conf = family_conf(tmp_path, tiny_model, tiny_model_b)
    ov = overrides_for(tmp_path, conf, "analysis.x=train_step", "task=[add_2]", "prompt=[zero_shot]",
                       "tasks.add_2.n=12", "sweep.name=ckpt", "cluster.num_cpus=2",
                       "metrics.names=[exact_match,token_edit_distance]")
    try:
        result = sweep.run(load(ov), progress=False)
    finally:
        shutdown()
    assert result.shards_run == 2 and len(result.curves) == 2
    for c in result.curves:
        assert c.x == (100.0, 200.0) and c.models == ("step-100", "step-200") and c.x_name == "train_step"
    assert {v.metric for v in result.analysis.verdicts} == {"exact_match", "token_edit_distance"}
    assert "training step" in result.report.read_text()
    table = sweep.cells_table(result.cells)
    assert table["train_step"].tolist() == [100, 200] and table["model"].tolist() == ["step-100", "step-200"]

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["ckpt"], filter_string="tags.`orchestrator.kind` = 'curve'")
    assert runs["tags.orchestrator.curve"].tolist() == ["add_2/zero_shot@train_step"]
    assert runs["params.x"].tolist() == ["train_step"]
    history = mlflow.MlflowClient().get_metric_history(runs["run_id"][0], "token_edit_distance")
    assert sorted(m.step for m in history) == [100, 200]
    cells = mlflow.search_runs(experiment_names=["ckpt"], filter_string="tags.`orchestrator.kind` = 'cell'")
    assert len(cells) == 2  # BIG-bench's normalised score beside each mean: exact match's chance is 0, best 1
    assert (cells["metrics.exact_match_normalized"] == 100 * cells["metrics.exact_match"]).all()
    assert "metrics.token_edit_distance_normalized" not in cells  # no chance for a distance: no normalised score
    assert sorted(cells["params.train_step"]) == ["100", "200"]  # a cell run says which checkpoint it read

    # the report from the store can re-read the same shards against training FLOPs; not against params
    # (all checkpoints share it), which exits 2 and names the fix
    root = str(tmp_path / "store")
    assert main(["report", "ckpt", "--root", root, "analysis.x=train_flops"]) == 0
    runs = mlflow.search_runs(experiment_names=["ckpt"], filter_string="tags.`orchestrator.kind` = 'curve'")
    assert sorted(runs["tags.orchestrator.curve"]) == ["add_2/zero_shot@train_flops", "add_2/zero_shot@train_step"]
    capsys.readouterr()
    assert main(["report", "ckpt", "--root", root, "analysis.x=params"]) == 2
    assert "use analysis.x=train_step" in capsys.readouterr().err
