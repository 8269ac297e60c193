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
