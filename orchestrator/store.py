"""The store: shard results on any fsspec filesystem, written atomically. The source of truth.

Layout under `root`:
    {sweep_id}/manifest.json          resolved config, code version, plan
    {sweep_id}/shards/{shard_id}.parquet   one finished shard (present = done)

This is the only module that imports fsspec.
"""

from __future__ import annotations

import fsspec


def read_text(url: str) -> str:
    """Read a whole text file from any fsspec URL (local path, s3://, gs://, github://, memory://)."""
    with fsspec.open(url, "rt", encoding="utf-8") as f:
        return f.read()


def exists(url: str) -> bool:
    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path)


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL without mangling its protocol."""
    out = url.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out
