"""The command line: bad input fails at start with a clear message, exit code 2, and nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.cli import main
from tests.conftest import REPO


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("sweep.shard_sise=10", "shard_sise"),  # unknown key
        ("sweep.shard_size=many", "sweep.shard_size"),  # wrong type
        ("task=[add_2,no_such_task]", "task/no_such_task"),  # unknown group option
        ("model.sizes=[zoo-huge]", "zoo-huge"),  # a size the family does not have
        ("prompts.three_shot.style=telepathy", "telepathy"),  # a value the schema cannot reject
        ("storage=nowhere", "storage/nowhere"),
    ],
)
def test_bad_override_fails_clearly(tmp_path, override, expected):
    r = _cli("run", "experiment=demo", override, f"storage.root={tmp_path / 'store'}",
             f"tracking.uri=sqlite:///{tmp_path / 'm.db'}", f"sweep.output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ")
    assert expected in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "m.db").exists()


def test_help_lists_commands():
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "--help"], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert r.returncode == 0
    for word in ("run", "plan", "zoo", "ui"):
        assert word in r.stdout


def test_plan_prints_grid_and_done_counts(tmp_path, tiny_conf):
    from tests.conftest import overrides_for

    args = overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=30",
                         "sweep.shard_size=10")
    r = _cli("plan", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 cells, 6 shards (0 done, 6 to run), 60 examples" in r.stdout
    assert not (tmp_path / "store").exists()  # planning writes nothing


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"input": "1+1=", "target": "2"}', '{"input": "2+2=", "target": '], ["bad.jsonl", "line 2"]),
        (['{"input": "1+1=", "target": "2"}', '{"input": "2+2="}'], ["bad.jsonl", "example 1", "target"]),
        ([], ["bad.jsonl", "no examples"]),
    ],
    ids=["bad-json", "no-target", "empty"],
)
def test_malformed_task_fails_before_any_shard(tmp_path, lines, expected):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    (tmp_path / "conf" / "task").mkdir(parents=True)  # a user's task: a yaml in their own config folder
    (tmp_path / "conf" / "task" / "mine.yaml").write_text(f"# @package tasks.mine\nsource: jsonl\nurl: {bad}\n")
    r = _cli("run", "experiment=demo", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "task=[add_2,mine]",
             f"storage.root={tmp_path / 'store'}", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}",
             f"sweep.output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    for word in expected:
        assert word in r.stderr, r.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "m.db").exists()


def test_unknown_metric_name_fails_at_start(tmp_path):
    r = _cli("run", "experiment=demo", "metrics.names=[exact_match,exakt_match]",
             f"storage.root={tmp_path / 'store'}", cwd=tmp_path)
    assert r.returncode == 2
    assert "exakt_match" in r.stderr and "known:" in r.stderr
    assert not (tmp_path / "store").exists()


def test_ui_on_a_tracking_server_points_at_it_instead_of_failing(capsys):
    """`mlflow ui --backend-store-uri http://...` cannot start: a server is already the UI."""
    assert main(["ui", "tracking=server", "tracking.uri=http://user:pw@10.0.0.5:5000"]) == 0
    out = capsys.readouterr().out
    assert "is a tracking server: open http://" in out and "10.0.0.5:5000" in out and "pw@" not in out
