"""The store: shard results on any fsspec filesystem, written atomically. The source of truth.

Layout under `root` (a folder, s3://bucket/prefix, gs://..., memory://...):
    {sweep_id}/manifest.json                the resolved config, code version and plan
    {sweep_id}/shards/{shard_id}.parquet    one finished shard: present means done
    {sweep_id}/curves/...                   plots and tables made from the shards

A reader never sees a partial file: on a local disk a shard is written to a
temporary name in the same folder and renamed (atomic on POSIX); on object
stores it is one PUT of the finished bytes. This is the only module that
imports fsspec.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import posixpath
import uuid
from collections.abc import Iterable
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

TMP_PREFIX = ".tmp-"


def read_text(url: str) -> str:
    """Read a whole text file from any fsspec URL (local path, s3://, gs://, github://, memory://)."""
    with fsspec.open(os.path.expanduser(url), "rt", encoding="utf-8") as f:
        return f.read()


def exists(url: str) -> bool:
    fs, path = fsspec.core.url_to_fs(os.path.expanduser(url))
    return fs.exists(path)


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL without mangling its protocol."""
    out = url.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def list_dirs(url: str) -> list[str]:
    """Names of the folders directly inside `url` (e.g. a BIG-bench parent task's subtasks); [] if none."""
    fs, path = fsspec.core.url_to_fs(os.path.expanduser(url))
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")


def write_atomic(url: str, data: bytes) -> None:
    """Write `data` so that `url` either does not exist or holds all of it."""
    fs, path = fsspec.core.url_to_fs(os.path.expanduser(url))
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        tmp = f"{parent}/{TMP_PREFIX}{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    else:
        fs.pipe_file(path, data)


class SweepStore:
    """One sweep's folder in the store."""

    def __init__(self, root: str, sweep_id: str):
        self.root = os.path.expanduser(root)
        self.sweep_id = sweep_id
        self.url = join(self.root, sweep_id)
        self.fs, self._path = fsspec.core.url_to_fs(self.url)

    # -- shards ---------------------------------------------------------------
    def shard_url(self, shard_id: str) -> str:
        return join(self.url, "shards", f"{shard_id}.parquet")

    def write_shard(self, shard_id: str, rows: list[dict[str, Any]]) -> None:
        """Write one finished shard atomically. Rows are Record dicts."""
        table = pa.Table.from_pylist(rows)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        write_atomic(self.shard_url(shard_id), buf.getvalue())

    def done(self) -> set[str]:
        """Ids of the shards whose files exist (temporary files are not shards)."""
        shards_dir = f"{self._path}/shards"
        if not self.fs.exists(shards_dir):
            return set()
        names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(shards_dir, detail=False)]
        return {n[: -len(".parquet")] for n in names if n.endswith(".parquet") and not n.startswith(TMP_PREFIX)}

    def read_shards(self, shard_ids: Iterable[str]) -> pd.DataFrame:
        frames = []
        for sid in shard_ids:
            with self.fs.open(f"{self._path}/shards/{sid}.parquet", "rb") as f:
                frames.append(pq.read_table(f).to_pandas())
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    # -- manifest and other files --------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        write_atomic(join(self.url, name), json.dumps(obj, indent=2, sort_keys=True, default=str).encode("utf-8"))

    def read_json(self, name: str) -> Any:
        with self.fs.open(f"{self._path}/{name}", "rt") as f:
            return json.load(f)

    def read_text(self, name: str) -> str:
        with self.fs.open(f"{self._path}/{name}", "rt") as f:
            return f.read()

    def has(self, name: str) -> bool:
        return self.fs.exists(f"{self._path}/{name}")

    def write_bytes(self, name: str, data: bytes) -> str:
        url = join(self.url, name)
        write_atomic(url, data)
        return url


def read_matching(url: str, name_glob: str) -> list[tuple[str, str]]:
    """(url, text) of every file named like `name_glob` at or below `url`, sorted; a file URL reads that file.

    For published results laid out in folders, e.g. BIG-bench's
    benchmark_tasks/<task>/results/scores_*.json, on any fsspec filesystem.
    Only file names are matched, so brackets or stars in `url` are literal.
    """
    fs, path = fsspec.core.url_to_fs(os.path.expanduser(url))
    if fs.isfile(path):
        paths = [path]
    else:
        paths = sorted(p for p in fs.find(path) if fnmatch.fnmatchcase(posixpath.basename(p), name_glob))
    out = []
    for p in paths:
        with fs.open(p, "rt", encoding="utf-8") as f:
            out.append((p if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(p), f.read()))
    return out
