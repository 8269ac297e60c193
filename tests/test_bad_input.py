"""Bad input, as a user types it: one line naming the field, the value and the fix, exit code 2, before any shard
runs, and nothing written (no store folder, no MLflow database). One test per row of README's "What happens when…".

Each case runs the real command line in this process (`orchestrator.cli.main`): nothing is mocked, and a check
that lets bad input through would start the sweep (and the test would see exit 0/1 and a store).
"""

from __future__ import annotations

import http.server
import os
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.conftest import overrides_for


def _run(tmp_path: Path, conf: Path, *more: str, capsys, monkeypatch) -> str:
    """`orchestrator run` on the tiny family, one task, one style; returns stderr after asserting exit 2 and
    that nothing was written."""
    monkeypatch.chdir(tmp_path)  # a relative path the command might write to lands here, where we look
    args = ["run", "-q", *overrides_for(tmp_path, conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=10"),
            *more]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, f"not one line: {err}"
    assert not (tmp_path / "store").exists(), "a store folder was written"
    assert not (tmp_path / "mlflow.db").exists(), "an MLflow database was written"
    assert not (tmp_path / "outputs").exists(), "outputs were written"
    return err


def _expect(err: str, *words: str) -> None:
    for w in words:
        assert w in err, f"{w!r} not in: {err}"


# -- 1. a key the schema does not have, added with + ----------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("+backend.batchsize=4", ["backend.batchsize=4", "not a config key", "backend.batch_size"]),
        ("+tasks.add_2.digit=3", ["tasks.add_2.digit=3", "tasks.add_2.digits"]),
        ("+sweep.shardsize=5", ["sweep.shardsize=5", "sweep.shard_size"]),
        ("+model.catalog.tiny-a.revison=v1", ["model.catalog.tiny-a.revison='v1'", "revision"]),
        ("+backend.zzz=1", ["backend.zzz=1", "remove it"]),
    ],
    ids=["backend", "task", "sweep", "catalog", "no-close-match"],
)
def test_unknown_key_added_with_plus(tmp_path, tiny_conf, capsys, monkeypatch, override, words):
    _expect(_run(tmp_path, tiny_conf, override, capsys=capsys, monkeypatch=monkeypatch), *words)


# -- 2. one model under two spellings of its path -------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["{p}/", "{parent}/./{name}", "{parent}//{name}"],
                         ids=["trailing-slash", "dot", "double-slash"])
def test_same_model_under_two_paths(tmp_path, tiny_conf, tiny_model, capsys, monkeypatch, spelling):
    other = spelling.format(p=tiny_model, parent=tiny_model.parent, name=tiny_model.name)
    err = _run(tmp_path, tiny_conf, f"model.catalog.tiny-b.path={other}", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, "model.sizes", "'tiny-a'", "'tiny-b'", repr(other), "one model", "run twice")


# -- 3. a local model path that does not exist (no zoo build) -------------------------------------------------
@pytest.mark.parametrize("path", ["{tmp}/nope/model", "./models/nope", "~/no-such-orchestrator-model", "a/b/c"],
                         ids=["absolute", "relative", "home", "two-slashes"])
def test_missing_local_model(tmp_path, tiny_conf, capsys, monkeypatch, path):
    path = path.format(tmp=tmp_path)
    err = _run(tmp_path, tiny_conf, f"model.catalog.tiny-b.path='{path}'", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, f"model.catalog.tiny-b.path={path!r}", "does not exist", "fix the path")
    assert "Repo id" not in err


def test_model_folder_without_safetensors(tmp_path, tiny_conf, capsys, monkeypatch):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\0")
    err = _run(tmp_path, tiny_conf, f"model.catalog.tiny-b.path={folder}", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, f"model.catalog.tiny-b.path={str(folder)!r}", "safetensors")


# -- 4. dtype, device, generation budget ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("model.dtype=float17", ["model.dtype='float17'", "float16"]),
        ("backend.device=tpu", ["backend.device='tpu'", "cpu, cuda"]),
        ("backend.device=cuda0", ["backend.device='cuda0'", "cuda:N"]),
        ("prompts.zero_shot.max_new_tokens=64", ["prompts.zero_shot.max_new_tokens=64", "context of 64 tokens",
                                                 "model.catalog.tiny-a"]),
        ("prompts.zero_shot.max_new_tokens=40 backend.max_length=32",
         ["prompts.zero_shot.max_new_tokens=40", "32 tokens (backend.max_length)", "below 32"]),
    ],
    ids=["dtype", "device", "device-typo", "budget-model-context", "budget-max-length"],
)
def test_bad_dtype_device_or_budget(tmp_path, tiny_conf, capsys, monkeypatch, override, words):
    _expect(_run(tmp_path, tiny_conf, *override.split(), capsys=capsys, monkeypatch=monkeypatch), *words)


# -- 5. a synthetic task too big to plan ---------------------------------------------------------------------
def test_synthetic_task_size_is_capped(tmp_path, tiny_conf, capsys, monkeypatch):
    from orchestrator.tasks.synthetic import MAX_N

    err = _run(tmp_path, tiny_conf, "tasks.add_2.n=100000000", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, "tasks.add_2.n=100000000", f"tasks.add_2.n={MAX_N}")


# -- 6. a storage root that cannot hold results ---------------------------------------------------------------
def _unwritable_dir(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: read-only permissions, or (as root, whom they do not
    stop) /sys, which refuses new files to everyone."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    try:
        fd, name = tempfile.mkstemp(dir="/sys")
    except OSError:
        return Path("/sys")
    os.close(fd)
    os.unlink(name)
    pytest.skip("running as root where /sys is writable: no folder refuses writes")


@pytest.mark.parametrize("kind", ["file", "under-file", "unknown-protocol", "not-writable"])
def test_bad_storage_root(tmp_path, tiny_conf, capsys, monkeypatch, kind):
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    root, words = {
        "file": (str(a_file), ["is a file", "not a folder"]),
        "under-file": (f"{a_file}/results", ["which is a file"]),
        "unknown-protocol": ("foo://bucket/results", ["unknown protocol 'foo'"]),
        "not-writable": (None, ["cannot be written"]),
    }[kind]
    if root is None:
        root = str(_unwritable_dir(tmp_path) / "results")
    err = _run(tmp_path, tiny_conf, f"storage.root={root}", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, f"storage.root={root!r}", *words)
    assert a_file.read_text() == "x"
    if kind == "not-writable":
        assert not Path(root).exists()


# -- 7. a task file that is not text ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line2", "words"),
    [
        (b'{"input": "\\ud800", "target": "2"}', ["line 2", "field input", "lone surrogate"]),
        (b'{"input": "\xff", "target": "2"}', ["line 2", "not UTF-8", "offset 44"]),
    ],
    ids=["lone-surrogate", "invalid-utf8"],
)
def test_task_file_not_text(tmp_path, tiny_conf, capsys, monkeypatch, line2, words):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"input": "1+1=", "target": "2"}\n' + line2 + b"\n")
    (tiny_conf / "task").mkdir()
    (tiny_conf / "task" / "mine.yaml").write_text(f"# @package tasks.mine\nsource: jsonl\nurl: {bad}\n")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "-q", *overrides_for(tmp_path, tiny_conf, "task=[mine]", "prompt=[zero_shot]")])
    err = capsys.readouterr().err
    assert code == 2, err
    _expect(err, str(bad), *words)
    assert not (tmp_path / "store").exists() and not (tmp_path / "mlflow.db").exists()


# -- 8. a sweep name with path characters ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a/b", "..", "../up", "a\\b", ".hidden"])
def test_sweep_name_with_path_characters(tmp_path, tiny_conf, capsys, monkeypatch, name):
    err = _run(tmp_path, tiny_conf, f"sweep.name={name}", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, f"sweep.name={name!r}", "sweep.name=my_sweep")


# -- 9. a context longer than the model has positions for -----------------------------------------------------
def test_max_length_above_the_models_context(tmp_path, tiny_conf, capsys, monkeypatch):
    err = _run(tmp_path, tiny_conf, "backend.max_length=512", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, "backend.max_length=512", "64 positions", "model.catalog.tiny-a", "backend.max_length=64")


# -- 10. a cluster address nothing answers at ----------------------------------------------------------------
@pytest.fixture()
def http_port():
    """A port where an HTTP server (not Ray) accepts connections."""
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the test reads stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["ray-client-refused", "gcs-refused", "not-ray", "no-such-host"])
def test_unreachable_cluster(tmp_path, tiny_conf, capsys, monkeypatch, http_port, kind):
    address = {"ray-client-refused": f"ray://127.0.0.1:{_closed_port()}", "gcs-refused": f"127.0.0.1:{_closed_port()}",
               "not-ray": f"127.0.0.1:{http_port}", "no-such-host": "ray://no-such-host.invalid:10001"}[kind]
    err = _run(tmp_path, tiny_conf, f"cluster.address={address}", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, f"cluster.address={address!r}", "within 5 s", "ray start --head")


# -- 11. a tracking server that does not answer ---------------------------------------------------------------
def test_unreachable_tracking_server(tmp_path, tiny_conf, capsys, monkeypatch):
    uri = f"http://127.0.0.1:{_closed_port()}"
    err = _run(tmp_path, tiny_conf, "tracking=server", f"tracking.uri={uri}", capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, f"tracking.uri={uri!r}", "does not answer", "tracking.enabled=false")


def test_tracking_probe_sends_no_password(tmp_path, tiny_conf, capsys, monkeypatch):
    port = _closed_port()
    err = _run(tmp_path, tiny_conf, "tracking=server", f"tracking.uri=http://bob:hunter2@127.0.0.1:{port}",
               capsys=capsys, monkeypatch=monkeypatch)
    _expect(err, "tracking.uri=", f"http://127.0.0.1:{port}/health")
    assert "hunter2" not in err


# -- the probes let good input through and leave nothing behind ----------------------------------------------
def test_probes_pass_good_input_and_write_nothing(tmp_path, http_port):
    from orchestrator.preflight import check_cluster_reachable, check_store_writable, check_tracking_reachable

    deep = tmp_path / "new" / "deeper" / "results"
    check_store_writable(str(deep))
    check_store_writable(f"file://{tmp_path}")
    check_store_writable("s3://bucket/prefix")  # object stores are not probed (no credentials handled here)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the probe left a file or created a folder"
    for address in (None, "", "local", "auto"):
        check_cluster_reachable(address)
    check_tracking_reachable("sqlite:///nowhere/mlflow.db")  # a local store: nothing to reach
    check_tracking_reachable(f"http://127.0.0.1:{http_port}")  # a server that answers (here 501) is there


def test_probe_accepts_a_real_ray_cluster():
    """A live GCS (which may demand a token) passes the cluster probe: the probe must not refuse real clusters."""
    ray = pytest.importorskip("ray")
    from orchestrator.preflight import check_cluster_reachable

    ctx = ray.init(num_cpus=1, include_dashboard=False, ignore_reinit_error=True)
    try:
        check_cluster_reachable(ctx.address_info["gcs_address"])
    finally:
        ray.shutdown()


# -- a metric that no cell of the sweep can give ----------------------------------------------------------------
def test_a_metric_no_cell_can_give(tmp_path, tiny_conf, capsys, monkeypatch):
    """Every style multiple_choice (nothing generated) and an output metric asked for: refused, not left blank."""
    err = _run(tmp_path, tiny_conf, "prompt=[mc]", "metrics.names=[exact_match]", capsys=capsys,
               monkeypatch=monkeypatch)
    _expect(err, "metrics.names", "'exact_match'", "no cell of this sweep can give",
            "every prompt style (mc) is multiple_choice")


# -- a zoo member under a folder that does not exist (it would train a new copy there) -------------------------
def test_zoo_member_under_a_missing_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "-q", "experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", "prompt=[zero_shot]",
                 f"model.catalog.zoo-3k.path={tmp_path}/typo/zoo-3k", f"storage.root={tmp_path / 'store'}",
                 f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"sweep.output_dir={tmp_path / 'outputs'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    _expect(err, f"model.catalog.zoo-3k.path='{tmp_path}/typo/zoo-3k'", "does not exist", "train a new zoo-3k")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "store").exists()
