"""The store writes shards atomically on real fsspec filesystems (local folder and memory://)."""

from __future__ import annotations

import os
import threading
import uuid

import pyarrow.parquet as pq
import pytest

from orchestrator import store as store_mod
from orchestrator.store import SweepStore, write_atomic


def _rows(n: int, tag: str = "x") -> list[dict]:
    return [{"example_idx": i, "generation": tag * 50, "target_logprobs": [-1.0, -2.0]} for i in range(n)]


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return f"memory://orchestrator-test-{uuid.uuid4().hex}"


def test_write_read_done(root):
    s = SweepStore(root, "sw")
    assert s.done() == set()
    s.write_shard("a1", _rows(3))
    s.write_shard("b2", _rows(5))
    assert s.done() == {"a1", "b2"}
    df = s.read_shards(["a1", "b2"])
    assert len(df) == 8 and list(df["example_idx"][:3]) == [0, 1, 2]
    assert list(df["target_logprobs"][0]) == [-1.0, -2.0]
    s.write_json("manifest.json", {"k": [1, 2]})
    assert s.read_json("manifest.json") == {"k": [1, 2]}


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    s = SweepStore(str(tmp_path), "sw")
    s.write_shard("keep", _rows(2, "old"))

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(store_mod.os, "replace", boom)
    with pytest.raises(OSError):
        s.write_shard("new", _rows(2))
    with pytest.raises(OSError):
        s.write_shard("keep", _rows(2, "new"))
    monkeypatch.undo()
    assert s.done() == {"keep"}  # the half-written temp file is not a shard
    assert s.read_shards(["keep"])["generation"][0].startswith("old")


def test_reader_never_sees_a_partial_file(tmp_path):
    """A reader polling while a writer rewrites a large file always reads a whole one."""
    target = tmp_path / "big.bin"
    sizes = [2_000_000 + i for i in range(15)]
    stop = threading.Event()
    bad: list[int] = []

    def reader():
        while not stop.is_set():
            if target.exists():
                n = len(target.read_bytes())
                if n not in sizes:
                    bad.append(n)

    t = threading.Thread(target=reader)
    t.start()
    for n in sizes:
        write_atomic(str(target), b"z" * n)
    stop.set()
    t.join()
    assert bad == []
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []


def test_shard_is_valid_parquet(tmp_path):
    s = SweepStore(str(tmp_path), "sw")
    s.write_shard("p", _rows(4))
    table = pq.read_table(tmp_path / "sw" / "shards" / "p.parquet")
    assert table.num_rows == 4 and "generation" in table.column_names


# -- integrity: each shard file says what it holds; damaged files are quarantined -------------------------------
def _recs(sid: str, n: int) -> list[dict]:
    return [{"shard_id": sid, "example_idx": i, "generation": f"g{i}", "target_logprobs": [-1.0, float(i)]}
            for i in range(n)]


def test_shard_file_carries_id_rows_and_checksum(root):
    s = SweepStore(root, "sw")
    s.write_shard("a1", _recs("a1", 4))
    with s.fs.open(f"{s._path}/shards/a1.parquet", "rb") as f:
        meta = pq.ParquetFile(f).schema_arrow.metadata
    assert meta[b"orchestrator.shard_id"] == b"a1" and meta[b"orchestrator.rows"] == b"4"
    assert len(meta[b"orchestrator.sha256"]) == 64
    assert s.verify(["a1"], {"a1": 4}) == []
    assert len(s.read_shards(["a1"], {"a1": 4})) == 4


def test_damaged_files_are_found_quarantined_and_missing(tmp_path, caplog):
    s = SweepStore(str(tmp_path / "store"), "sw")
    for sid in ("good", "trunc", "empty", "zero", "other", "rows"):
        s.write_shard(sid, _recs(sid, 5))
    shards = tmp_path / "store" / "sw" / "shards"
    data = (shards / "trunc.parquet").read_bytes()
    (shards / "trunc.parquet").write_bytes(data[: len(data) // 2])  # truncated
    (shards / "empty.parquet").write_bytes(b"")  # 0 bytes
    s.write_shard("zero", [])  # a valid file with 0 rows
    (shards / "other.parquet").write_bytes((shards / "good.parquet").read_bytes())  # another shard's file
    expected = {sid: 5 for sid in ("good", "trunc", "empty", "zero", "other", "rows")}
    expected["rows"] = 6  # the plan expects another count
    with caplog.at_level("WARNING"):
        bad = s.verify(s.done(), expected)
    assert bad == ["empty", "other", "rows", "trunc", "zero"]
    assert s.done() == {"good"}
    moved = sorted(p.name.split(".")[0] for p in (tmp_path / "store" / "sw" / "quarantine").iterdir())
    assert moved == bad
    for sid in bad:
        assert f"shard {sid} is damaged" in caplog.text and f"quarantine/{sid}." in caplog.text


def test_read_shards_checks_rows_and_names_the_damaged_file(tmp_path):
    import pyarrow as pa

    from orchestrator.store import DamagedShards

    s = SweepStore(str(tmp_path / "store"), "sw")
    s.write_shard("a", _recs("a", 3))
    s.write_shard("b", _recs("b", 3))
    path = tmp_path / "store" / "sw" / "shards" / "b.parquet"
    table = pq.read_table(path)  # same metadata, one value changed: the footer checks pass, the checksum not
    changed = table.set_column(table.column_names.index("generation"), "generation", pa.array(["x", "g1", "g2"]))
    pq.write_table(changed, path)
    assert s.verify(["a", "b"], {"a": 3, "b": 3}) == []
    with pytest.raises(DamagedShards, match=r"quarantine/b\.") as e:
        s.read_shards(["a", "b"])
    assert e.value.shard_ids == ["b"] and s.done() == {"a"}


def test_old_files_without_metadata_are_accepted_by_their_columns(tmp_path):
    import pyarrow as pa

    s = SweepStore(str(tmp_path / "store"), "sw")
    shards = tmp_path / "store" / "sw" / "shards"
    shards.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(_recs("old", 3)), shards / "old.parquet")  # as before this change
    pq.write_table(pa.Table.from_pylist(_recs("x", 3)), shards / "mixed.parquet")
    assert s.verify(["old", "mixed"], {"old": 3, "mixed": 3}) == ["mixed"]
    assert len(s.read_shards(["old"], {"old": 3})) == 3


# -- the driver lease ---------------------------------------------------------------------------------------
def test_second_driver_is_refused_naming_the_first(root):
    import socket

    from orchestrator.config import ConfigError

    s = SweepStore(root, "sw")
    first = s.acquire_driver()
    try:
        with pytest.raises(ConfigError) as e:
            SweepStore(root, "sw").acquire_driver()
        msg = str(e.value)
        assert socket.gethostname() in msg and f"pid {os.getpid()}" in msg and "started" in msg
        assert "driver.json" in msg and "expires" in msg
    finally:
        first.release()
    assert not s.has("driver.json")
    SweepStore(root, "sw").acquire_driver().release()  # free again


def test_lease_of_a_dead_or_silent_driver_is_taken_over(tmp_path):
    import socket
    import subprocess
    import time

    s = SweepStore(str(tmp_path / "store"), "sw")
    gone = subprocess.Popen(["true"])
    gone.wait()
    lease = {"host": socket.gethostname(), "pid": gone.pid, "token": "t", "started": time.time(),
             "heartbeat": time.time()}
    s.write_json("driver.json", lease)
    s.acquire_driver().release()  # same host, process gone: at once
    killed = subprocess.Popen(["sleep", "30"])
    killed.kill()
    time.sleep(0.3)  # killed, not yet reaped (a zombie): gone all the same
    s.write_json("driver.json", {**lease, "pid": killed.pid})
    s.acquire_driver().release()
    killed.wait()
    s.write_json("driver.json", {**lease, "host": "elsewhere", "heartbeat": time.time() - 500})
    s.acquire_driver().release()  # another host, no heartbeat for 500 s > 120 s


def test_heartbeat_refreshes_the_lease(tmp_path):
    import time

    s = SweepStore(str(tmp_path / "store"), "sw")
    lease = s.acquire_driver(heartbeat_s=0.2)
    try:
        first = s.read_json("driver.json")["heartbeat"]
        time.sleep(0.8)
        assert s.read_json("driver.json")["heartbeat"] > first
    finally:
        lease.release()


def test_verify_on_an_object_store_like_filesystem():
    """memory:// stands in for s3/gcs here: footers are read in parallel; the same files are found bad."""
    s = SweepStore(f"memory://orchestrator-test-{uuid.uuid4().hex}", "sw")
    for sid in ("a", "b", "c", "d"):
        s.write_shard(sid, _recs(sid, 3))
    s.fs.pipe_file(f"{s._path}/shards/b.parquet", b"PAR1")  # 4 bytes
    s.fs.pipe_file(f"{s._path}/shards/c.parquet", s.fs.cat_file(f"{s._path}/shards/a.parquet"))
    assert s.verify(s.done(), {sid: 3 for sid in "abcd"}) == ["b", "c"]
    assert s.done() == {"a", "d"} and len(s.fs.ls(f"{s._path}/quarantine")) == 2
