"""One small real sweep, read back as a notebook user and an auditor would.

The sweep runs through the `orchestrator run` entry point against a real
`mlflow server` whose URI carries a user and password, so the same run checks
that the notebook API reads it at both levels, and that the password reaches
neither stdout, nor manifest.json, nor MLflow, while real parameters whose
names contain "token" (max_new_tokens) reach MLflow intact.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import mlflow
import pytest

from orchestrator import results
from orchestrator.cli import main
from orchestrator.execute import shutdown
from tests.conftest import mlflow_server

pytestmark = pytest.mark.integration

PASSWORD = "pa55w0rd-xyz"
N = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as port:
        yield port


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model, tiny_model_b, server):
    """Run the sweep once for the module; return its paths, the tracking URI and what it printed."""
    from transformers import AutoModelForCausalLM

    tmp = tmp_path_factory.mktemp("sweep")
    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model).parameters())
    (tmp / "conf" / "model").mkdir(parents=True)
    (tmp / "conf" / "model" / "tiny.yaml").write_text(
        "family: tiny\nbuild: null\ncatalog:\n"
        f"  tiny-a: {{path: '{tiny_model}', params: {n}}}\n"
        f"  tiny-b: {{path: '{tiny_model_b}', params: {n * 10}}}\n"
        "sizes: [tiny-a, tiny-b]\n"
    )
    uri = f"http://alice:{PASSWORD}@127.0.0.1:{server}"
    args = ["run", "-q", f"hydra.searchpath=[file://{tmp / 'conf'}]", "model=tiny", "task=[add_2]",
            "prompt=[zero_shot,three_shot]", f"tasks.add_2.n={N}", "sweep.name=res", "cluster.num_cpus=2",
            "backend.batch_size=8", "prompts.zero_shot.max_new_tokens=5", f"storage.root={tmp / 'store'}",
            f"sweep.output_dir={tmp / 'outputs'}", f"tracking.uri={uri}"]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(args)
    finally:
        shutdown()
    assert rc == 0, err.getvalue()
    return {"root": str(tmp / "store"), "uri": uri, "port": server, "stdout": out.getvalue(),
            "stderr": err.getvalue()}


def test_examples_level_has_one_row_per_example_and_cell(swept):
    df = results.load("res", root=swept["root"])
    assert len(df) == 2 * 1 * 2 * N  # sizes x tasks x prompt styles x examples
    for col in ("model", "params", "task", "prompt_style", "prompt", "example_idx", "answer", "cell_id"):
        assert col in df.columns, col
    assert set(df["prompt_style"]) == {"zero_shot", "three_shot"} and set(df["model"]) == {"tiny-a", "tiny-b"}
    # `prompt` is the rendered prompt the model read: the 3-shot one holds solved exemplars
    three = df[df["prompt_style"] == "three_shot"]["prompt"]
    zero = df[df["prompt_style"] == "zero_shot"]["prompt"]
    assert three.str.count("=").min() >= 4 and zero.str.count("=").max() == 1
    per_cell = df.groupby(["model", "task", "prompt_style"]).size()
    assert (per_cell == N).all() and len(per_cell) == 4
    assert df.groupby("cell_id")[["model", "prompt_style"]].nunique().max().max() == 1  # one cell, one label


def test_cell_level_joins_the_example_level(swept):
    cells = results.load("res", root=swept["root"], level="cell")
    assert len(cells) == 4 and "prompt_style" in cells.columns and "exact_match" in cells.columns
    assert cells["exact_match"].between(0, 1).all()
    examples = results.load("res", root=swept["root"])
    counts = examples.groupby(["model", "params", "task", "prompt_style"]).size().rename("rows").reset_index()
    joined = cells.merge(counts, on=["model", "params", "task", "prompt_style"], how="outer", validate="1:1")
    assert (joined["rows"] == joined["n"]).all()


def test_bad_level_and_missing_sweep_say_so(swept, tmp_path):
    with pytest.raises(ValueError, match="level='cells'"):
        results.load("res", root=swept["root"], level="cells")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        results.load("nope", root=swept["root"])


def test_the_password_is_nowhere_and_real_parameters_are_intact(swept):
    assert PASSWORD not in swept["stdout"] + swept["stderr"]
    assert f"mlflow: http://***@127.0.0.1:{swept['port']}" in swept["stdout"]
    manifest_text = (Path(swept["root"]) / "res" / "manifest.json").read_text()
    assert PASSWORD not in manifest_text
    manifest = json.loads(manifest_text)
    assert manifest["config"]["tracking"]["uri"] == f"http://***@127.0.0.1:{swept['port']}"
    assert manifest["config"]["prompts"]["zero_shot"]["max_new_tokens"] == 5
    assert {m["fingerprint"].split(":")[0] for m in manifest["models"].values()} == {"files"}

    client = mlflow.tracking.MlflowClient(tracking_uri=f"http://127.0.0.1:{swept['port']}")
    exp = client.get_experiment_by_name("res")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags["orchestrator.kind"] == "sweep")
    p = parent.data.params
    assert p["prompts.zero_shot.max_new_tokens"] == "5"
    assert p["prompts.three_shot.max_new_tokens"] == str(manifest["config"]["prompts"]["three_shot"]["max_new_tokens"])
    assert p["metrics.names"].count("token_edit_distance") == 1
    assert p["tracking.uri"] == f"http://***@127.0.0.1:{swept['port']}"
    assert not any(PASSWORD in v for r in runs for v in [*r.data.params.values(), *r.data.tags.values()])
    cell = next(r for r in runs if r.data.tags["orchestrator.kind"] == "cell")
    assert cell.data.params["model_fingerprint"].startswith("files:")


def test_a_rescore_asks_for_the_masked_uri_and_finds_every_shard_with_it(swept):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", "res", "--root", swept["root"]]) == 2
    assert "tracking.uri" in err.getvalue() and "masked" in err.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", "res", "--root", swept["root"], f"tracking.uri={swept['uri']}"]) == 0
    assert "4 cells rescored" in out.getvalue() and PASSWORD not in out.getvalue()


def test_the_readme_demo_block_is_written_from_the_store_and_checked_against_it(swept, tmp_path):
    """docs/make_demo_docs.py: README's demo numbers come from the stored sweep, and --check catches drift."""
    import importlib.util


    spec = importlib.util.spec_from_file_location("make_demo_docs", Path(__file__).parents[1] / "docs" /
                                                  "make_demo_docs.py")
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{docs.BEGIN.format('res')}\nstale text\n{docs.END.format('res')}\n\ntail\n")
    argv = ["--root", swept["root"], "--sweep", "res", "--readme", str(readme), "--figure", str(tmp_path / "c.png")]
    assert docs.main([*argv, "--check"]) == 1  # the stale block is caught
    assert docs.main(argv) == 0
    text = readme.read_text()
    assert "stale text" not in text and text.endswith("\n\ntail\n")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cells = results.load("res", root=swept["root"], level="cell")
    zero = cells[cells["prompt_style"] == "zero_shot"].sort_values("params")
    row = next(line for line in text.splitlines() if line.startswith("| add_2 | zero_shot |"))
    assert row.split(" | ")[2] == " · ".join(docs._fmt(v) for v in zero["exact_match"])  # the store's numbers
    assert docs.main([*argv, "--check"]) == 0
    readme.write_text(text.replace(row, row.replace("| add_2 |", "| add_9 |")))
    assert docs.main([*argv, "--check"]) == 1

