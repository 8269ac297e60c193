"""The first-hour traps of the command line (issue 13), each as a user types it: `orchestrator run` with nothing
after it, Hydra's `--cfg job` / `--info` / `-m`, unknown options that list the valid ones, the singular group vs
plural key mix-ups, and `orchestrator ui` on a taken port or a store that is not there.

Every case runs the real command line in this process (`orchestrator.cli.main`); nothing is mocked. A check that
let the input through would start a sweep (or a UI), and the test would see another exit code and files written.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.conftest import REPO

TASKS = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))
PROMPTS = sorted(p.stem for p in (REPO / "conf" / "prompt").glob("*.yaml"))


def _args(tmp_path: Path, *more: str) -> list[str]:
    """`run experiment=demo` with everything it could write kept inside tmp_path."""
    return ["run", "-q", "experiment=demo", f"storage.root={tmp_path / 'store'}",
            f"tracking.uri=sqlite:///{tmp_path / 'm.db'}", f"sweep.output_dir={tmp_path / 'out'}", *more]


def _nothing_written(tmp_path: Path) -> None:
    for name in ("store", "m.db", "out", "results", "outputs", "mlflow.db"):
        assert not (tmp_path / name).exists(), f"{name} was written"


def _refused(tmp_path: Path, capsys, *more: str) -> str:
    code = main(_args(tmp_path, *more))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, f"not one line: {err}"
    _nothing_written(tmp_path)
    return err


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run in an empty folder with an empty zoo folder: nothing built, anything relative lands where we look."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.delenv("ORCHESTRATOR_CONF", raising=False)
    return tmp_path


# -- orchestrator run with nothing after it ---------------------------------------------------------------------
def test_bare_run_says_what_it_would_do_and_runs_nothing(here, capsys):
    code = main(["run"])
    out = capsys.readouterr().out
    assert code == 2, out
    assert "5 sizes" in out and "2 tasks" in out and "= 20 cells" in out, out
    assert "train the zoo members not built yet" in out and "minutes" in out, out
    assert "orchestrator run experiment=demo" in out and "The embedded demo" in out, out
    for exp in (REPO / "conf" / "experiment").glob("*.yaml"):
        assert f"experiment={exp.stem}" in out
    assert "--yes" in out
    assert not (here / "zoo").exists(), "the zoo was built"
    _nothing_written(here)


def test_bare_run_with_yes_goes_on(here, capsys, monkeypatch):
    """--yes passes the guard: a default tree with a bad value is then refused by the config check, not the guard."""
    conf = here / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "config.yaml").write_text((conf / "config.yaml").read_text().replace("shard_size: 100", "shard_size: 0"))
    monkeypatch.setenv("ORCHESTRATOR_CONF", str(conf))
    assert main(["run"]) == 2
    assert "Pick an experiment" in capsys.readouterr().out
    assert main(["run", "--yes"]) == 2
    captured = capsys.readouterr()
    assert "sweep.shard_size=0" in captured.err and "Pick an experiment" not in captured.out
    _nothing_written(here)


def test_an_override_is_enough(here, capsys):
    """README's main command is not held up: any override (here with --cfg, so nothing runs) skips the guard."""
    assert main(["run", "experiment=demo", "--cfg", "job"]) == 0
    assert "name: demo" in capsys.readouterr().out


# -- --cfg job, --info, -m ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "plan", "submit"])
def test_cfg_job_prints_the_resolved_config_masked(here, capsys, command):
    code = main([command, "experiment=demo", "task=[add_3]", "storage.root=s3://user:hunter2@bucket/orch",
                 "tracking.uri=http://bob:pw123@mlflow.example:5000", "--cfg", "job"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    assert "hunter2" not in out and "pw123" not in out
    assert "bucket/orch" in out and "mlflow.example" in out
    assert re.search(r"^tasks:\n  add_3:\n", out, re.M), out
    assert "add_2" not in out.split("prompts:")[0].split("tasks:")[1]
    assert "name: demo" in out
    _nothing_written(here)


@pytest.mark.parametrize("command", ["run", "plan", "submit"])
def test_info_lists_groups_options_and_experiments(here, capsys, command):
    assert main([command, "--info"]) == 0
    out = capsys.readouterr().out
    for group in ("backend", "cluster", "experiment", "metrics", "model", "prompt", "storage", "task", "tracking"):
        assert re.search(rf"^  {group} +\S", out, re.M), f"{group} missing:\n{out}"
    task_line = next(line for line in out.splitlines() if line.startswith("  task "))
    assert all(t in task_line for t in TASKS)
    assert "demo" in out and "The embedded demo" in out
    assert "tasks.add_2.n" in out  # the plural key, shown next to the singular group


def test_info_includes_a_searchpath_folder(here, capsys):
    (here / "mine" / "task").mkdir(parents=True)
    (here / "mine" / "task" / "my_task.yaml").write_text("# @package tasks.my_task\nsource: synthetic\n")
    assert main(["plan", f"hydra.searchpath=[file://{here / 'mine'}]", "--info"]) == 0
    task_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  task "))
    assert "my_task" in task_line


@pytest.mark.parametrize("flag", ["-m", "--multirun"])
def test_multirun_is_refused_with_why_and_what_instead(tmp_path, capsys, flag):
    err = _refused(tmp_path, capsys, flag)
    assert "one process" in err and "'task=[add_2,add_3]'" in err and "drop -m" in err


# -- unknown options list the valid ones -------------------------------------------------------------------------
@pytest.mark.parametrize("override", ["task=[add_33]", "task=add_33", "task=[add_2,add_33]"],
                         ids=["list", "scalar", "list-of-two"])
def test_unknown_task_lists_the_options_in_every_form(tmp_path, capsys, override):
    err = _refused(tmp_path, capsys, override)
    assert "task/add_33" in err
    assert all(t in err for t in TASKS), err
    assert "did you mean add_3?" in err


@pytest.mark.parametrize("override", ["prompt=[few_shot]", "prompt=few_shot", "prompts.few_shot.shots=3",
                                      "+prompts.few_shot.shots=3"])
def test_a_hint_names_only_options_that_exist(tmp_path, capsys, override):
    err = _refused(tmp_path, capsys, override)
    assert all(p in err for p in PROMPTS), err
    for suggested in re.findall(r"did you mean ([\w.]+)\?", err):
        assert suggested in PROMPTS, f"suggests {suggested!r}, which does not exist: {err}"
    assert "+prompts" not in err.split(":", 2)[2], err  # Hydra's "use +prompts.few_shot..." leads nowhere
    assert "--multirun" not in err


def test_a_users_own_task_is_listed_too(tmp_path, capsys):
    (tmp_path / "mine" / "task").mkdir(parents=True)
    (tmp_path / "mine" / "task" / "my_task.yaml").write_text("# @package tasks.my_task\nsource: synthetic\n")
    err = _refused(tmp_path, capsys, f"hydra.searchpath=[file://{tmp_path / 'mine'}]", "task=[my_tsak]")
    assert "my_task" in err and "did you mean my_task?" in err


def test_unknown_key_lists_the_sections_keys(tmp_path, capsys):
    err = _refused(tmp_path, capsys, "backend.devise=cpu")
    assert "did you mean backend.device?" in err and "batch_size" in err and "+backend" not in err


# -- singular groups, plural keys ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "fix"),
    [
        ("tasks=[add_2]", "'task=[add_2]'"),
        ("prompts=[zero_shot]", "'prompt=[zero_shot]'"),
        ("task.add_2.n=5", "write tasks.add_2.n=5"),
        ("prompt.zero_shot.max_new_tokens=4", "write prompts.zero_shot.max_new_tokens=4"),
        ("experiments=demo", "write experiment=demo"),
        ("task=add_2,add_3", "'task=[add_2,add_3]'"),
    ],
)
def test_group_and_key_mixups_name_the_exact_override(tmp_path, capsys, override, fix):
    err = _refused(tmp_path, capsys, override)
    assert fix in err, err
    assert "To append" not in err and "--multirun" not in err


def test_a_field_of_a_task_not_in_the_sweep(tmp_path, capsys):
    err = _refused(tmp_path, capsys, "task=[add_2]", "tasks.add_4.n=5")
    assert "'task=[add_2,add_4]'" in err and "not in this sweep" in err


def test_the_right_spellings_still_work(here, capsys):
    assert main(["run", "experiment=demo", "task=[add_2]", "tasks.add_2.n=5", "prompt=[k_shot]",
                 "prompts.k_shot.shots=2", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  add_2:\n(    .*\n)*    '?n'?: 5$", out, re.M) and re.search(r"^    shots: 2$", out, re.M)


# -- a device that is not one ----------------------------------------------------------------------------------
def test_device_typo_is_refused(tmp_path, capsys):
    err = _refused(tmp_path, capsys, "backend.device=cdua")
    assert "backend.device='cdua'" in err and "cuda" in err


# -- orchestrator ui -----------------------------------------------------------------------------------------------
def test_ui_on_a_taken_port_fails(here, capsys):
    db = here / "m.db"
    db.touch()  # the store is there: the port is what fails
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = main(["ui", f"tracking.uri=sqlite:///{db}", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"127.0.0.1:{port} is taken" in err and "--port " in err


def test_ui_on_a_store_that_is_not_there_says_so(here, capsys):
    code = main(["ui"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{here / 'mlflow.db'} does not exist" in err
    assert not (here / "mlflow.db").exists(), "an empty MLflow database was created"


def test_ui_names_the_store_a_sweep_logged_to(here, capsys):
    """A sweep run with its own tracking.uri: `ui` in its folder finds it in the store's manifest and prints the
    exact command, with the absolute URI."""
    own = here / "elsewhere" / "own.db"
    own.parent.mkdir()
    own.touch()
    (here / "results" / "mysweep").mkdir(parents=True)
    (here / "results" / "mysweep" / "manifest.json").write_text(
        json.dumps({"config": {"tracking": {"enabled": True, "uri": f"sqlite:///{own}"}}}))
    code = main(["ui"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(rf"mysweep: orchestrator ui '?tracking\.uri=sqlite:///{re.escape(str(own))}'?(;|$)", err), err
    assert not (here / "mlflow.db").exists()


def test_ui_on_a_tracking_server_that_is_not_running(here, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["ui", "tracking=server", f"tracking.uri=http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "does not answer" in err and "infra/mlflow" in err
