"""The store: shard results on any fsspec filesystem, written atomically. The source of truth.

Layout under `root` (a folder, s3://bucket/prefix, gs://..., memory://...):
    {sweep_id}/manifest.json                the resolved config, code version and plan
    {sweep_id}/shards/{shard_id}.parquet    one finished shard: present means done
    {sweep_id}/failures/{shard_id}.json     a shard whose last attempt failed: error, attempts, node
    {sweep_id}/curves/...                   plots and tables made from the shards

A reader never sees a partial file: on a local disk a shard is written to a
temporary name in the same folder and renamed (atomic on POSIX); on object
stores it is one PUT of the finished bytes. This is the only module that
imports fsspec.

Object stores need their fsspec package, installed as an extra
(`pip install 'orchestrator[s3]'` for s3fs, `orchestrator[gcs]` for gcsfs);
`check_root` says so at start, before any model loads. `storage.options` go
to the filesystem's constructor (s3fs: `endpoint_url`, `profile`,
`client_kwargs: {region_name: ...}`, `anon`); credentials come from the
environment or the machine's cloud identity, not from the config.
"""

from __future__ import annotations

import fnmatch
import hashlib
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
from fsspec.registry import known_implementations

from orchestrator.config import ConfigError

TMP_PREFIX = ".tmp-"
# protocol -> (the package that implements it, the extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
}


def _protocols(url: str) -> list[str]:
    """Every protocol in a (possibly chained, `simplecache::s3://...`) URL; "file" for a plain path."""
    out = []
    for part in url.split("::"):
        proto, _ = fsspec.core.split_protocol(part)
        out.append(proto or "file")
    return out


def check_root(root: str, options: dict[str, Any] | None = None, field: str = "storage.root") -> None:
    """Fail now with the fix if `root` cannot be opened: an unknown protocol, a package not installed, bad options.

    Called before any model loads, so a sweep on s3:// without s3fs stops at
    once with the install command instead of an ImportError after its models ran.
    """
    root = os.path.expanduser(root)
    for proto in _protocols(root):
        try:
            fsspec.get_filesystem_class(proto)
        except ValueError as e:
            known = sorted({*fsspec.available_protocols(), *EXTRAS})
            raise ConfigError(
                f"{field}={root!r}: unknown protocol {proto!r}; use a local folder or one of: s3://, gs://, "
                f"memory://, file:// (every protocol fsspec knows: {', '.join(known)})"
            ) from e
        except ImportError as e:
            raise ConfigError(f"{field}={root!r} needs {_install_hint(proto)}") from e
    try:
        fsspec.core.url_to_fs(root, **dict(options or {}))
    except ImportError as e:  # a package the filesystem imports lazily (e.g. s3fs without aiobotocore)
        raise ConfigError(f"{field}={root!r} needs {_install_hint(_protocols(root)[-1])}: {e}") from e
    except TypeError as e:
        raise ConfigError(
            f"storage.options={sorted(options or {})} are not accepted by the filesystem for {root!r}: {e}; "
            "see its documentation (s3fs: endpoint_url, profile, anon, client_kwargs={region_name: ...})"
        ) from e


def _install_hint(proto: str) -> str:
    """'s3fs: pip install 'orchestrator[s3]'' for a protocol this project knows, fsspec's own hint otherwise."""
    if proto in EXTRAS:
        package, extra = EXTRAS[proto]
        return f"{package}: pip install 'orchestrator[{extra}]'"
    impl = known_implementations.get(proto, {})
    package = str(impl.get("class", proto)).split(".")[0]
    return f"{package}: pip install {package}" + (f" ({impl['err']})" if impl.get("err") else "")


def _fs(url: str, options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of `url`; a missing package or unknown protocol is a ConfigError with the fix."""
    url = os.path.expanduser(url)
    try:
        return fsspec.core.url_to_fs(url, **dict(options or {}))
    except (ImportError, ValueError):
        check_root(url, options, field="url")
        raise


def read_text(url: str) -> str:
    """Read a whole text file from any fsspec URL (local path, s3://, gs://, github://, memory://)."""
    fs, path = _fs(url)
    with fs.open(path, "rt", encoding="utf-8") as f:
        return f.read()


def exists(url: str) -> bool:
    fs, path = _fs(url)
    return fs.exists(path)


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL without mangling its protocol."""
    out = url.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def list_dirs(url: str) -> list[str]:
    """Names of the folders directly inside `url` (e.g. a BIG-bench parent task's subtasks); [] if none."""
    fs, path = _fs(url)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")


def write_atomic(url: str, data: bytes, options: dict[str, Any] | None = None) -> None:
    """Write `data` so that `url` either does not exist or holds all of it."""
    fs, path = _fs(url, options)
    _write_atomic(fs, path, data)


def _write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
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
    """One sweep's folder in the store; `options` go to the filesystem (storage.options: endpoint, profile...)."""

    def __init__(self, root: str, sweep_id: str, options: dict[str, Any] | None = None):
        self.root = os.path.expanduser(root)
        self.sweep_id = sweep_id
        self.url = join(self.root, sweep_id)
        self.options = dict(options or {})
        try:
            self.fs, self._path = fsspec.core.url_to_fs(self.url, **self.options)
        except (ImportError, ValueError, TypeError):
            check_root(self.root, self.options)
            raise

    # -- shards ---------------------------------------------------------------
    def shard_url(self, shard_id: str) -> str:
        return join(self.url, "shards", f"{shard_id}.parquet")

    def write_shard(self, shard_id: str, rows: list[dict[str, Any]]) -> str:
        """Write one finished shard atomically; return the sha256 of the file written. Rows are Record dicts."""
        table = pa.Table.from_pylist(rows)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
        _write_atomic(self.fs, f"{self._path}/shards/{shard_id}.parquet", data)
        return hashlib.sha256(data).hexdigest()

    def done(self) -> set[str]:
        """Ids of the shards whose files exist (temporary files are not shards)."""
        shards_dir = f"{self._path}/shards"
        self.fs.invalidate_cache(shards_dir)  # s3fs/gcsfs cache listings: other processes write shards too
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

    # -- failed attempts -------------------------------------------------------
    def write_failure(self, shard_id: str, info: dict[str, Any]) -> None:
        """Record a shard's failed attempts (error class, message, attempts, node, time): a failure is a fact in
        the store, not only a log line. A later success removes it (clear_failure)."""
        _write_atomic(self.fs, f"{self._path}/failures/{shard_id}.json",
                      json.dumps(info, sort_keys=True, default=str).encode())

    def clear_failure(self, shard_id: str) -> None:
        path = f"{self._path}/failures/{shard_id}.json"
        if self.fs.exists(path):
            self.fs.rm(path)

    def failures(self) -> dict[str, dict[str, Any]]:
        """Shard id -> its last failure record, for shards whose last attempt failed."""
        folder = f"{self._path}/failures"
        self.fs.invalidate_cache(folder)
        if not self.fs.exists(folder):
            return {}
        out = {}
        for p in self.fs.ls(folder, detail=False):
            name = p.rsplit("/", 1)[-1]
            if name.endswith(".json") and not name.startswith(TMP_PREFIX):
                with self.fs.open(p, "rt") as f:
                    out[name[: -len(".json")]] = json.load(f)
        return out

    # -- manifest and other files --------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        _write_atomic(self.fs, f"{self._path}/{name}", json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, name: str) -> Any:
        with self.fs.open(f"{self._path}/{name}", "rt") as f:
            return json.load(f)

    def read_text(self, name: str) -> str:
        with self.fs.open(f"{self._path}/{name}", "rt") as f:
            return f.read()

    def has(self, name: str) -> bool:
        self.fs.invalidate_cache(f"{self._path}/{name}")
        return self.fs.exists(f"{self._path}/{name}")

    def write_bytes(self, name: str, data: bytes) -> str:
        _write_atomic(self.fs, f"{self._path}/{name}", data)
        return join(self.url, name)


def read_matching(url: str, name_glob: str) -> list[tuple[str, str]]:
    """(url, text) of every file named like `name_glob` at or below `url`, sorted; a file URL reads that file.

    For published results laid out in folders, e.g. BIG-bench's
    benchmark_tasks/<task>/results/scores_*.json, on any fsspec filesystem.
    Only file names are matched, so brackets or stars in `url` are literal.
    """
    fs, path = _fs(url)
    if fs.isfile(path):
        paths = [path]
    else:
        paths = sorted(p for p in fs.find(path) if fnmatch.fnmatchcase(posixpath.basename(p), name_glob))
    out = []
    for p in paths:
        with fs.open(p, "rt", encoding="utf-8") as f:
            out.append((p if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(p), f.read()))
    return out
