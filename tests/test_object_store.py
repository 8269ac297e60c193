"""Object stores: shards on a real S3-compatible server (moto), missing extras, and the cluster root rule.

The S3 server is moto's, listening on 127.0.0.1: s3fs talks to it over HTTP
exactly as it talks to AWS or MinIO, through `storage.options` carrying the
endpoint. Nothing in fsspec or s3fs is mocked.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from orchestrator.config import ConfigError, load
from orchestrator.secrets import MASK, redact, redact_param
from orchestrator.store import SweepStore, check_root
from tests.conftest import REPO

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

DUMMY_KEY, DUMMY_SECRET = "testing-key-id", "testing-secret-value"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server on 127.0.0.1 (moto's ThreadedMotoServer), for this module."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def bucket(s3_endpoint, monkeypatch) -> str:
    """A fresh bucket; dummy credentials in the environment, where real ones come from too."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    name = f"orch-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def _objects(endpoint: str, bucket: str) -> list[str]:
    """Every key in the bucket, listed by boto3 (another client than the one that wrote)."""
    out = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in out.get("Contents", []))


def _rows(n: int, tag: str = "x") -> list[dict]:
    return [{"example_idx": i, "generation": tag * 20, "target_logprobs": [-1.0, -0.5]} for i in range(n)]


@pytest.mark.parametrize("style", ["endpoint_url", "client_kwargs"])
def test_shards_on_s3_through_storage_options(s3_endpoint, bucket, style):
    options = ({"endpoint_url": s3_endpoint} if style == "endpoint_url"
               else {"client_kwargs": {"endpoint_url": s3_endpoint}})
    s = SweepStore(f"s3://{bucket}/prefix", "sw", options)
    assert s.done() == set()
    s.write_shard("a1", _rows(3))
    s.write_shard("b2", _rows(5, "y"))
    s.write_json("manifest.json", {"cells": [1, 2]})
    assert s.done() == {"a1", "b2"}
    df = s.read_shards(["a1", "b2"])
    assert len(df) == 8 and list(df["example_idx"][:3]) == [0, 1, 2] and df["generation"][3] == "y" * 20
    assert s.read_json("manifest.json") == {"cells": [1, 2]}
    # the objects are really in the bucket, under the prefix, and nothing else is (no temporary names)
    assert _objects(s3_endpoint, bucket) == [
        "prefix/sw/manifest.json", "prefix/sw/shards/a1.parquet", "prefix/sw/shards/b2.parquet"]


def test_done_sees_shards_written_by_another_client(s3_endpoint, bucket):
    """Workers write shards themselves: the driver's listing must not be a stale cache."""
    s = SweepStore(f"s3://{bucket}/p", "sw", {"endpoint_url": s3_endpoint})
    s.write_shard("first", _rows(1))
    assert s.done() == {"first"}
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").put_object(
        Bucket=bucket, Key="p/sw/shards/second.parquet", Body=b"PAR1")
    assert s.done() == {"first", "second"}


def test_without_the_endpoint_the_options_are_what_reached_the_server(s3_endpoint, bucket):
    """The same bucket with no options is AWS's, not the local server: the endpoint really came from options."""
    SweepStore(f"s3://{bucket}/p", "sw", {"endpoint_url": s3_endpoint}).write_shard("a", _rows(1))
    assert SweepStore(f"s3://{bucket}/p", "sw", {"endpoint_url": s3_endpoint}).done() == {"a"}
    other = SweepStore(f"s3://{bucket}/p", "sw", {"endpoint_url": f"http://127.0.0.1:{_free_port()}",
                                                  "config_kwargs": {"retries": {"max_attempts": 1}},
                                                  "connect_timeout": 1})
    with pytest.raises(Exception):  # noqa: B017 - nothing listens there: any connection error will do
        other.done()


# -- missing extras and unknown protocols --------------------------------------------------------------------------

def _cli_without(package: str, *args: str, cwd) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter where `package` cannot be imported (Python's None-in-sys.modules block)."""
    code = (f"import sys; sys.modules[{package!r}] = None; from orchestrator.cli import main; "
            f"sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize(("storage", "root", "package", "extra"), [
    ("s3", "s3://bucket/x", "s3fs", "s3"),
    ("gcs", "gs://bucket/x", "gcsfs", "gcs"),
])
def test_missing_extra_is_reported_at_start_with_the_install_command(tmp_path, storage, root, package, extra):
    r = _cli_without(package, "run", "experiment=demo", f"storage={storage}", f"storage.root={root}",
                     f"tracking.uri=sqlite:///{tmp_path / 'm.db'}", f"sweep.output_dir={tmp_path / 'out'}",
                     "model.sizes=[zoo-3k]", "task=[add_2]", "prompt=[zero_shot]", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"storage.root='{root}' needs {package}: pip install 'orchestrator[{extra}]'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written: no db, no outputs, no store


def test_a_protocol_whose_package_is_absent_names_that_package():
    """abfs (Azure) is known to fsspec but adlfs is not a dependency: the real ImportError path, not a simulation."""
    if importlib.util.find_spec("adlfs") is not None:
        pytest.skip("adlfs is installed here")
    with pytest.raises(ConfigError, match=r"storage.root='abfs://c/x' needs adlfs: pip install adlfs"):
        check_root("abfs://c/x")


def test_unknown_protocol_names_the_field_and_the_known_ones():
    with pytest.raises(ConfigError) as e:
        check_root("s4://bucket/x")
    msg = str(e.value)
    assert "storage.root='s4://bucket/x'" in msg and "unknown protocol 's4'" in msg
    assert "s3://" in msg and "gs://" in msg and "memory" in msg


def test_local_and_memory_roots_need_no_extra(tmp_path):
    check_root(str(tmp_path / "store"))
    check_root("memory://x")
    check_root(f"file://{tmp_path}")


# -- a cluster needs a store every node reaches ----------------------------------------------------------------------

def _cfg(*overrides: str):
    return load(["experiment=demo", "model.sizes=[zoo-3k]", "task=[add_2]", "prompt=[zero_shot]", *overrides])


@pytest.mark.parametrize("root", ["results", "./runs/store", "file://results", "memory://sw"])
def test_a_root_other_nodes_cannot_reach_is_refused_on_a_cluster(root):
    with pytest.raises(ConfigError) as e:
        _cfg("cluster=ray", f"storage.root={root}")
    msg = str(e.value)
    assert f"storage.root={root!r}" in msg and "cluster.address='auto'" in msg
    assert "absolute path on a shared filesystem" in msg and "s3://" in msg and "gs://" in msg


def test_roots_every_node_can_reach_are_allowed_on_a_cluster(caplog):
    assert _cfg("cluster=ray", "storage=s3", "storage.root=s3://b/x").storage.root == "s3://b/x"
    assert _cfg("cluster=ray", "cluster.address=ray://head:10001", "storage.root=gs://b/x").storage.root
    with caplog.at_level(logging.WARNING, logger="orchestrator.config"):
        _cfg("cluster=ray", "storage.root=/shared/results")
    assert "every node must see it" in caplog.text


def test_a_relative_root_is_fine_on_the_local_cluster(caplog):
    with caplog.at_level(logging.WARNING, logger="orchestrator.config"):
        assert _cfg("storage.root=results").cluster.address is None
        assert _cfg("cluster.address=local", "storage.root=results").storage.root == "results"
    assert "every node" not in caplog.text


# -- credentials in storage.options are masked -----------------------------------------------------------------------

def test_an_access_key_in_storage_options_is_masked_in_manifest_and_mlflow(tmp_path):
    """s3fs takes the access key id as `key`: masked in storage.options and beside a `secret`, kept elsewhere."""
    import mlflow

    from orchestrator.tracking import Tracker, flatten

    config = {
        "storage": {"root": "s3://b/x", "options": {"key": "plain-key-id", "secret": "plain-secret",
                                                    "endpoint_url": "http://127.0.0.1:9000",
                                                    "client_kwargs": {"key": "other-key-id", "secret": "s2"}}},
        "analysis": {"sort": {"key": "params"}},
    }
    clean = redact(config)
    assert clean["storage"]["options"] == {"key": MASK, "secret": MASK, "endpoint_url": "http://127.0.0.1:9000",
                                           "client_kwargs": {"key": MASK, "secret": MASK}}
    assert clean["analysis"]["sort"] == {"key": "params"}  # a sort key is not a credential
    flat = flatten(config)
    assert redact_param("storage.options.key", flat["storage.options.key"]) == MASK
    assert redact_param("analysis.sort.key", "params") == "params"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = Tracker(uri, "exp").sweep_run("sw", "fp", config, {})
    params = mlflow.tracking.MlflowClient(tracking_uri=uri).get_run(parent).data.params
    assert params["storage.options.endpoint_url"] == "http://127.0.0.1:9000"
    assert params["analysis.sort.key"] == "params"
    everything = json.dumps(params)
    for secret in ("plain-key-id", "plain-secret", "other-key-id"):
        assert secret not in everything, secret


# -- a whole sweep on S3 -----------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_sweep_on_s3_and_resume_runs_nothing(tmp_path, tiny_conf, s3_endpoint, bucket):
    from orchestrator import sweep
    from orchestrator.execute import shutdown
    from tests.conftest import overrides_for

    cfg = load([
        *overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=12",
                       "sweep.shard_size=6", "sweep.name=s3test", "cluster.num_cpus=2", "backend.batch_size=6"),
        f"storage.root=s3://{bucket}/runs", f"+storage.options.endpoint_url={s3_endpoint}",
    ])
    try:
        first = sweep.run(cfg, progress=False)
        assert first.failed == {} and first.shards_run == 2 * 2 and len(first.cells) == 2
        keys = _objects(s3_endpoint, bucket)
        assert sum(k.startswith("runs/s3test/shards/") for k in keys) == 4 and "runs/s3test/manifest.json" in keys
        assert not (tmp_path / "store").exists()  # nothing landed on the local disk instead
        second = sweep.run(cfg, progress=False)
        assert second.shards_run == 0 and second.shards_skipped == 4
        assert [c.scores for c in second.cells] == [c.scores for c in first.cells]
    finally:
        shutdown()
