"""Checks with a little I/O that a sweep runs before any work: the store can be written, the cluster and the
tracking server answer.

Each failure is a ConfigError naming the field, the value and the fix, so a bad
root or an address that nothing listens on stops the sweep at once (exit 2)
instead of after every shard ran, or never (a connect to a black-holed address
hangs). Nothing is left behind: the store probe creates and removes one file in
the nearest folder that exists, and creates no folder.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from orchestrator.config import ConfigError, SweepConfig

CONNECT_TIMEOUT_S = 5.0
RAY_CLIENT_PORT = 10001
RAY_GCS_PORT = 6379


def _local_path(root: str) -> str | None:
    """The local folder `root` names, or None for an object store or another protocol (not probed)."""
    if root.startswith("file://"):
        return root[len("file://"):]
    if "://" in root or "::" in root:
        return None
    return os.path.expanduser(root)


def check_store_writable(root: str, options: dict[str, Any] | None = None, field: str = "storage.root") -> None:
    """A local root must be a folder (or not exist yet under a folder) this process can write in.

    Probed by creating and removing a file in the root, or in its nearest existing
    parent when the root does not exist yet, so a read-only mount or a folder of
    another user fails here even for root (whom permission bits do not stop).
    Object stores (s3://, gs://, ...) are not probed: their permissions show on
    the first write, and a probe there would need credentials this check should
    not handle. `options` is accepted for the same signature as the store's.
    """
    del options
    path = _local_path(root)
    if path is None:
        return
    target = os.path.abspath(path)
    probe_dir = target
    while not os.path.exists(probe_dir):
        parent = os.path.dirname(probe_dir)
        if parent == probe_dir:
            break
        probe_dir = parent
    if not os.path.isdir(probe_dir):
        where = "is a file" if probe_dir == target else f"is under {probe_dir!r}, which is a file"
        raise ConfigError(f"{field}={root!r} {where}, not a folder: give a folder for the results, e.g. "
                          f"{field}={os.path.join(os.path.dirname(probe_dir) or '.', 'results')}")
    try:
        fd, name = tempfile.mkstemp(prefix=".orchestrator-probe-", dir=probe_dir)
    except OSError as e:
        reason = {errno.EROFS: "a read-only filesystem", errno.ENOSPC: "a full disk",
                  errno.EACCES: "no write permission", errno.EPERM: "no write permission"}.get(e.errno, e.strerror)
        raise ConfigError(
            f"{field}={root!r} cannot be written: {probe_dir!r} refuses a new file ({reason}); pick a folder you "
            f"can write, e.g. {field}=$HOME/results, or fix its permissions"
        ) from None  # the message says it all; the OSError would add a second line
    os.close(fd)
    os.unlink(name)


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) to connect to for a cluster address; None for a local cluster or `auto` (found by Ray)."""
    if not address or address in ("local", "auto"):
        return None
    if "://" in address:
        u = urlsplit(address)
        default = RAY_CLIENT_PORT if u.scheme == "ray" else (443 if u.scheme == "https" else 80)
        return u.hostname or "", u.port or default
    host, _, port = address.rpartition(":")
    if not host:
        return address, RAY_GCS_PORT
    return host.strip("[]"), int(port)


def _connect(host: str, port: int, timeout: float) -> OSError | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return e


def check_cluster_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT_S,
                            field: str = "cluster.address") -> None:
    """Something must accept a TCP connection at the cluster's address within `timeout` seconds.

    Ray's own connect retries for minutes against a black-holed address (and the
    Ray Client gives a bare "connection timeout"); a TCP connect with a timeout
    tells in seconds. `None`, `local` and `auto` are not probed.
    """
    try:
        target = _host_port(address or "")
    except ValueError as e:
        raise ConfigError(f"{field}={address!r} is not an address ({e}): use ray://host:10001, host:6379 or "
                          "auto") from None
    if target is None:
        return
    host, port = target
    fix = ("start the cluster (`ray start --head`, or infra/local_cluster.sh start), fix the address, or drop "
           "cluster.address to run on a local Ray")
    err = _connect(host, port, timeout)
    if err is not None:
        why = "timed out" if isinstance(err, TimeoutError | socket.timeout) else f"{type(err).__name__}: {err}"
        raise ConfigError(f"{field}={address!r}: nothing answers at {host}:{port} within {timeout:g} s ({why}); {fix}")
    if "://" not in (address or ""):  # a GCS address: a proxy or another server may accept any TCP connection
        why = _gcs_answer(f"{host}:{port}", timeout)
        if why:
            raise ConfigError(f"{field}={address!r}: no Ray cluster answers at {host}:{port} within {timeout:g} s "
                              f"({why}); {fix}")


# gRPC codes that only a live GCS returns to a bare call (token authentication on): it is there
_GCS_ALIVE = ("OK", "UNAUTHENTICATED", "PERMISSION_DENIED")


def _gcs_answer(target: str, timeout: float) -> str | None:
    """None when a Ray GCS answers GetClusterId at `target` (or the check cannot run here), else why not."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:
        return None
    with grpc.insecure_channel(target) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout)
        except grpc.RpcError as e:
            code = e.code().name if e.code() is not None else "UNKNOWN"
            if code in _GCS_ALIVE:
                return None
            return f"gRPC {code}: {e.details()}"
    return None


def check_tracking_reachable(uri: str, timeout: float = CONNECT_TIMEOUT_S, field: str = "tracking.uri") -> None:
    """An http(s) tracking server must answer its health check within `timeout` seconds.

    Without this, a wrong URI shows only when the first result is logged (after
    every shard ran); `sqlite:` and file stores are local and not probed.
    """
    from orchestrator.secrets import redact_text

    if not uri.startswith(("http://", "https://")):
        return
    u = urlsplit(uri.rstrip("/"))
    host = f"[{u.hostname}]" if u.hostname and ":" in u.hostname else u.hostname or ""
    base = f"{u.scheme}://{host}{f':{u.port}' if u.port else ''}{u.path}"  # the probe sends no credentials
    fix = "start the server (see infra/mlflow), fix tracking.uri, or run without it: tracking.enabled=false"
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout):
            return
    except urllib.error.HTTPError as e:  # it answered (a server without /health, behind auth): there, unless a
        if e.code not in (502, 503, 504):  # proxy says the server behind it is down
            return
        reason = f"HTTP {e.code} {e.reason}"
    except (OSError, ValueError) as e:
        inner = getattr(e, "reason", e)
        timed_out = isinstance(inner, TimeoutError | socket.timeout)
        reason = "timed out" if timed_out else f"{type(inner).__name__}: {inner}"
    raise ConfigError(f"{field}={redact_text(uri)!r}: the tracking server does not answer at {base}/health within "
                      f"{timeout:g} s ({reason}); {fix}")


def preflight(cfg: SweepConfig, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Every check of this module, and each local model's context against the generation budget, for a sweep
    about to run here: call it before the store, MLflow or Ray is touched (raises ConfigError)."""
    from orchestrator.resolve import check_context

    check_store_writable(cfg.storage.root, cfg.storage.options)
    check_context(cfg)
    if cfg.cluster.address:
        check_cluster_reachable(cfg.cluster.address, timeout)
    if cfg.tracking.enabled:
        check_tracking_reachable(cfg.tracking.uri, timeout)
