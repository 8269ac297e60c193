"""The store: shard results on any fsspec filesystem, written atomically. The source of truth.

Layout under `root` (a folder, s3://bucket/prefix, gs://..., memory://...):
    {sweep_id}/manifest.json                the resolved config, code version and plan
    {sweep_id}/shards/{shard_id}.parquet    one finished shard: present means done
    {sweep_id}/shards/{shard_id}.{passes}.parquet   the same, holding only some inference passes
                                            (`orchestrator.passes`, e.g. `.generate`): done for a run that
                                            needs no more; a run that needs more runs it again and replaces it
    {sweep_id}/failures/{shard_id}.json     a shard whose last attempt failed: error, attempts, node
    {sweep_id}/quarantine/{shard_id}.{time}.parquet   a damaged shard file, moved aside (then recomputed)
    {sweep_id}/driver.json                  the lease of the driver running the sweep (host, pid, heartbeat)
    {sweep_id}/curves/...                   plots and tables made from the shards

A reader never sees a partial file: on a local disk a shard is written to a
temporary name in the same folder and renamed (atomic on POSIX); on object
stores it is one PUT of the finished bytes. This is the only module that
imports fsspec.

Every shard file says what it holds in its parquet key-value metadata
(`orchestrator.shard_id`, `orchestrator.rows`, `orchestrator.sha256`). The
checksum is the sha256 of the rows' canonical JSON (`table.to_pylist()`,
sorted keys), not of the file bytes: a file cannot hold its own hash, and the
JSON of the rows survives parquet's round trip where Arrow's IPC bytes do not
(nested field names and chunking change). `verify` checks the listing's sizes
and the footers (cheap, before a run); `read_shards` also checks every row.
A file that fails is moved to quarantine/ and is missing from then on, so the
next run recomputes it. Files written before this metadata existed are
checked by their `shard_id` column and row count only.

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
import logging
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import known_implementations

from orchestrator.config import ConfigError
from orchestrator.passes import ALL, file_suffix, parse_suffix

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
META_SHARD_ID = b"orchestrator.shard_id"
META_ROWS = b"orchestrator.rows"
META_SHA256 = b"orchestrator.sha256"
MIN_PARQUET_BYTES = 12  # "PAR1" + footer length + "PAR1": anything smaller cannot be a parquet file
LEASE_TTL_S = 120.0  # a driver lease whose heartbeat is older than this is free to take
HEARTBEAT_S = 30.0
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
        self._names: dict[str, str] = {}  # shard id -> its file's name, from the last listing and this process's writes
        # shard id -> [file name, size, rows checksum] of the files this process wrote (orchestrator.cellcache's
        # verified-index entry: a file written whole here needs no footer check)
        self.written: dict[str, list] = {}
        self.footer_checksums: dict[str, str] = {}  # shard id -> rows checksum its footer held when verify read it

    # -- shards ---------------------------------------------------------------
    def shard_url(self, shard_id: str) -> str:
        return join(self.url, "shards", self._names.get(shard_id, f"{shard_id}.parquet"))

    def _shard_path(self, shard_id: str) -> str:
        return f"{self._path}/shards/{self._names.get(shard_id, f'{shard_id}.parquet')}"

    def write_shard(self, shard_id: str, rows: list[dict[str, Any]], passes: frozenset[str] = ALL,
                    replaces: frozenset[str] | None = None) -> str:
        """Write one finished shard atomically, with its shard id, row count and rows' checksum in the parquet
        metadata; return the sha256 of the file written. Rows are Record dicts holding `passes`.

        `replaces`: the passes of the shard's file this one supersedes; that file is removed once this one is
        written (until then a reader takes whichever holds more passes)."""
        table = pa.Table.from_pylist(rows)
        table = table.replace_schema_metadata({
            **(table.schema.metadata or {}),
            META_SHARD_ID: shard_id.encode(),
            META_ROWS: str(table.num_rows).encode(),
            META_SHA256: rows_checksum(table).encode(),
        })
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
        name = f"{shard_id}{file_suffix(passes)}.parquet"
        _write_atomic(self.fs, f"{self._path}/shards/{name}", data)
        self._names[shard_id] = name
        self.written[shard_id] = [name, len(data), table.schema.metadata[META_SHA256].decode()]
        if replaces is not None and file_suffix(replaces) != file_suffix(passes):
            try:
                self.fs.rm_file(f"{self._path}/shards/{shard_id}{file_suffix(replaces)}.parquet")
            except FileNotFoundError:
                pass
        return hashlib.sha256(data).hexdigest()

    def _entries(self) -> dict[str, tuple[int, frozenset[str]]]:
        """Shard id -> (file size in bytes, passes it holds), from one listing (temporary files are not shards).

        Where two files hold one shard (a run that added passes stopped between writing the new file and
        removing the old), the one with more passes counts."""
        shards_dir = f"{self._path}/shards"
        self.fs.invalidate_cache(shards_dir)  # s3fs/gcsfs cache listings: other processes write shards too
        if not self.fs.exists(shards_dir):
            return {}
        out: dict[str, tuple[int, frozenset[str]]] = {}
        for e in self.fs.ls(shards_dir, detail=True):
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            if not name.endswith(".parquet") or name.startswith(TMP_PREFIX) or e.get("type", "file") != "file":
                continue
            sid, _, suffix = name[: -len(".parquet")].partition(".")
            passes = parse_suffix(suffix)
            if passes is None or (sid in out and len(out[sid][1]) >= len(passes)):
                continue
            out[sid] = (int(e.get("size") or 0), passes)
            self._names[sid] = name
        return out

    def _listing(self) -> dict[str, int]:
        """Shard id -> file size in bytes, from one listing (temporary files are not shards)."""
        return {sid: size for sid, (size, _) in self._entries().items()}

    def done(self) -> set[str]:
        """Ids of the shards whose files exist (temporary files are not shards), whatever passes they hold."""
        return set(self._entries())

    def shard_passes(self) -> dict[str, frozenset[str]]:
        """Shard id -> the inference passes its file holds (`orchestrator.passes`), from one listing."""
        return {sid: passes for sid, (_, passes) in self._entries().items()}

    def verify(self, shard_ids: Iterable[str], expected_rows: dict[str, int] | None = None) -> list[str]:
        """Check finished shards before trusting them; quarantine and return the ids of the bad ones.

        Cheap first: the listing's sizes (a file under 12 bytes is bad without a read), then each footer
        (row count, and the shard id and row count the file says it holds; an old file without them: its
        `shard_id` column). Footers are read in parallel on object stores. Rows' checksums are checked when
        the rows are read (read_shards).
        """
        sizes = self._listing()
        ids = [i for i in shard_ids if i in sizes]
        bad = {i: f"{sizes[i]} bytes" for i in ids if sizes[i] < MIN_PARQUET_BYTES}
        todo = [i for i in ids if i not in bad]
        expected_rows = expected_rows or {}

        def check(sid: str) -> tuple[str, str | None]:
            try:
                return sid, self._check_footer(sid, expected_rows.get(sid))
            except Exception as e:  # noqa: BLE001 - any read error means the file cannot be trusted
                return sid, f"unreadable ({type(e).__name__}: {e})"

        if isinstance(self.fs, LocalFileSystem) or len(todo) < 2:
            results = [check(i) for i in todo]
        else:
            with ThreadPoolExecutor(max_workers=16) as pool:
                results = list(pool.map(check, todo))
        bad.update({sid: why for sid, why in results if why})
        for sid, why in sorted(bad.items()):
            self.quarantine(sid, why)
        return sorted(bad)

    def _check_footer(self, sid: str, expected: int | None) -> str | None:
        """Why the file of shard `sid` is bad from its footer (and its shard_id column for an old file), or None."""
        with self.fs.open(self._shard_path(sid), "rb") as f:
            pf = pq.ParquetFile(f)
            meta = pf.schema_arrow.metadata or {}
            self.footer_checksums[sid] = meta.get(META_SHA256, b"").decode()  # orchestrator.cellcache keys on it
            rows = pf.metadata.num_rows
            if expected is not None and rows != expected:
                return f"{rows} rows, the plan expects {expected}"
            if META_SHARD_ID in meta:
                if meta[META_SHARD_ID].decode() != sid:
                    return f"holds shard {meta[META_SHARD_ID].decode()}"
                if int(meta.get(META_ROWS, b"-1")) != rows:
                    return f"{rows} rows, its metadata says {meta[META_ROWS].decode()}"
                return None
            if "shard_id" in pf.schema_arrow.names:  # written before shard files carried metadata
                return _wrong_shard_ids(pf.read(columns=["shard_id"]), sid)
        return None

    def read_shards(self, shard_ids: Iterable[str], expected_rows: dict[str, int] | None = None) -> pd.DataFrame:
        """The shards' rows, each file checked (readable, its shard id, row count and checksum, `expected_rows`
        when given). Bad files are quarantined, then DamagedShards names them: they are missing from then on."""
        frames, bad = [], {}
        expected_rows = expected_rows or {}
        for sid in shard_ids:
            if sid not in self._names:
                self._entries()  # its file's name (which passes it holds) is not known yet
            try:
                with self.fs.open(self._shard_path(sid), "rb") as f:
                    table = pq.read_table(f)
            except FileNotFoundError:
                raise
            except Exception as e:  # noqa: BLE001 - a truncated or garbled file
                bad[sid] = f"unreadable ({type(e).__name__}: {e})"
                continue
            why = _check_table(table, sid, expected_rows.get(sid))
            if why:
                bad[sid] = why
                continue
            frames.append(table.to_pandas())
        if bad:
            moved = [self.quarantine(sid, why) for sid, why in sorted(bad.items())]
            raise DamagedShards(self.sweep_id, sorted(bad), moved)
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def quarantine(self, shard_id: str, why: str) -> str:
        """Move a damaged shard file to quarantine/{shard_id}.{time}.parquet, say so, return where it went."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{uuid.uuid4().hex[:6]}"
        src = self._shard_path(shard_id)
        dst = f"{self._path}/quarantine/{shard_id}.{stamp}.parquet"
        self.fs.makedirs(f"{self._path}/quarantine", exist_ok=True)
        try:
            self.fs.mv(src, dst)
        except FileNotFoundError:
            return ""
        self._names.pop(shard_id, None)
        url = join(self.url, "quarantine", f"{shard_id}.{stamp}.parquet")
        log.warning("shard %s is damaged (%s): moved to %s; it will be recomputed", shard_id, why, url)
        return url

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

    # -- the driver lease ------------------------------------------------------
    def acquire_driver(self, ttl_s: float = LEASE_TTL_S, heartbeat_s: float = HEARTBEAT_S) -> DriverLease:
        """Take the sweep's driver lease, or raise ConfigError naming the driver that holds it."""
        lease = DriverLease(self, ttl_s, heartbeat_s)
        lease.acquire()
        return lease

    # -- manifest and other files --------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        _write_atomic(self.fs, f"{self._path}/{name}", json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, name: str) -> Any:
        with self.fs.open(f"{self._path}/{name}", "rt") as f:
            return json.load(f)

    def read_text(self, name: str) -> str:
        with self.fs.open(f"{self._path}/{name}", "rt") as f:
            return f.read()

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open(f"{self._path}/{name}", "rb") as f:
            return f.read()

    def has(self, name: str) -> bool:
        self.fs.invalidate_cache(f"{self._path}/{name}")
        return self.fs.exists(f"{self._path}/{name}")

    def write_bytes(self, name: str, data: bytes) -> str:
        _write_atomic(self.fs, f"{self._path}/{name}", data)
        return join(self.url, name)


class DriverLease:
    """One driver per sweep: `{sweep}/driver.json` says who runs it (host, pid, start, heartbeat).

    Taken atomically on a local disk (a hard link, which like O_EXCL fails if the name exists). Object stores
    have no create-if-absent here, so the lease is written and read back to confirm: two drivers starting
    within one PUT/GET round trip (~0.2 s) of each other could both believe they won until the next
    heartbeat, when the loser finds the other's token and stops refreshing (it logs a warning; shard writes
    are idempotent and MLflow runs are found by tag before one is created).
    A lease is free when its heartbeat is older than `ttl_s`, or, on the same host, when its pid is gone.
    A daemon thread refreshes the heartbeat every `heartbeat_s`; `release` (in a finally) removes the file.
    """

    NAME = "driver.json"

    def __init__(self, store: SweepStore, ttl_s: float = LEASE_TTL_S, heartbeat_s: float = HEARTBEAT_S):
        self.store, self.ttl_s, self.heartbeat_s = store, ttl_s, heartbeat_s
        self.path = f"{store._path}/{self.NAME}"
        self.token = uuid.uuid4().hex
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                     "started": time.time(), "heartbeat": time.time()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict[str, Any] | None:
        fs = self.store.fs
        fs.invalidate_cache(self.path)
        try:
            with fs.open(self.path, "rt") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}  # half-written or garbled: treated as expired

    def _body(self) -> bytes:
        return json.dumps(self.info, sort_keys=True).encode()

    def _stale(self, other: dict[str, Any]) -> bool:
        if not other or time.time() - float(other.get("heartbeat", 0)) > self.ttl_s:
            return True
        if other.get("host") == socket.gethostname() and isinstance(other.get("pid"), int):
            try:
                os.kill(other["pid"], 0)
            except ProcessLookupError:
                return True  # its process is gone (killed): no need to wait for the heartbeat to expire
            except PermissionError:
                return False
            return _zombie(other["pid"])
        return False

    def acquire(self) -> None:
        fs = self.store.fs
        fs.makedirs(self.store._path, exist_ok=True)
        for _ in range(3):
            if isinstance(fs, LocalFileSystem):
                if self._create_local():
                    break
            other = self._read()
            if other is None and isinstance(fs, LocalFileSystem):
                continue  # released between our create and our read: create again
            if other is not None and not self._stale(other):
                self._refuse(other)
            if other:  # expired: take it over
                log.warning("taking over the driver lease of %s pid %s (no heartbeat for %.0f s or process gone)",
                            other.get("host"), other.get("pid"), time.time() - float(other.get("heartbeat", 0)))
            _write_atomic(fs, self.path, self._body())  # then read back: the last writer owns it
            time.sleep(0.2)
            if (self._read() or {}).get("token") == self.token:
                break
        else:
            self._refuse(self._read() or {})
        self._thread = threading.Thread(target=self._beat, name="orchestrator-lease", daemon=True)
        self._thread.start()

    def _create_local(self) -> bool:
        """Create the lease file whole or not at all: written under a temporary name, then hard-linked into
        place (link fails if the name exists, like O_EXCL, and no reader sees a half-written lease)."""
        tmp = f"{self.path}.{TMP_PREFIX}{self.token}"
        with open(tmp, "wb") as f:
            f.write(self._body())
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)

    def _refuse(self, other: dict[str, Any]) -> None:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(other.get("started", 0))))
        age = time.time() - float(other.get("heartbeat", 0))
        raise ConfigError(
            f"sweep {self.store.sweep_id!r} is being run by another driver: host {other.get('host')}, pid "
            f"{other.get('pid')}, started {started} (last heartbeat {age:.0f} s ago); wait for it to finish. If it "
            f"is dead, its lease expires {self.ttl_s:.0f} s after its last heartbeat (at once on the same host), "
            f"or delete {join(self.store.url, self.NAME)}"
        )

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                now = self._read()
                if now is not None and now.get("token") not in (None, self.token):
                    log.warning("the driver lease of sweep %s was taken by %s pid %s; no longer refreshing it",
                                self.store.sweep_id, now.get("host"), now.get("pid"))
                    return
                self.info["heartbeat"] = time.time()
                _write_atomic(self.store.fs, self.path, self._body())
            except Exception as e:  # noqa: BLE001 - a store hiccup must not kill the sweep; the next beat retries
                log.warning("could not refresh the driver lease (%s: %s)", type(e).__name__, e)

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if (self._read() or {}).get("token") == self.token:
                self.store.fs.rm(self.path)
        except Exception as e:  # noqa: BLE001
            log.warning("could not release the driver lease %s (%s)", self.path, type(e).__name__)


def _zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet (Linux /proc); False where that cannot be told."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class DamagedShards(ConfigError):
    """Shard files that failed their checks and were moved aside; a ConfigError so the CLI says it in one line."""

    def __init__(self, sweep_id: str, shard_ids: list[str], moved: list[str]):
        self.shard_ids = shard_ids
        super().__init__(
            f"sweep {sweep_id}: {len(shard_ids)} damaged shard file(s) moved aside "
            f"({', '.join(m for m in moved if m)}); "
            f"run the sweep again (`orchestrator run` with the same overrides) to recompute them"
        )


def rows_checksum(table: pa.Table) -> str:
    """sha256 of a table's rows as canonical JSON: the same for the rows written and the rows read back."""
    h = hashlib.sha256()
    for row in table.to_pylist():
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def _wrong_shard_ids(table: pa.Table, sid: str) -> str | None:
    others = sorted({v for v in table.column("shard_id").to_pylist() if v != sid}, key=str)
    return f"holds rows of shard {others[0]}" if others else None


def _check_table(table: pa.Table, sid: str, expected: int | None) -> str | None:
    """Why a shard table read whole is not shard `sid`'s, or None."""
    if expected is not None and table.num_rows != expected:
        return f"{table.num_rows} rows, the plan expects {expected}"
    meta = table.schema.metadata or {}
    if META_SHARD_ID in meta:
        if meta[META_SHARD_ID].decode() != sid:
            return f"holds shard {meta[META_SHARD_ID].decode()}"
        if int(meta.get(META_ROWS, b"-1")) != table.num_rows:
            return f"{table.num_rows} rows, its metadata says {meta[META_ROWS].decode()}"
        if META_SHA256 in meta and rows_checksum(table) != meta[META_SHA256].decode():
            return "its rows do not match their checksum"
    if "shard_id" in table.column_names:
        return _wrong_shard_ids(table.select(["shard_id"]), sid)
    return None


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
