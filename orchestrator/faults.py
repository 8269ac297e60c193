"""Fault injection, so the healing paths are tested by real faults rather than assumed.

Off unless ORCHESTRATOR_FAULTS is set (in the environment the Ray workers inherit). It is a comma-separated
list of `<kind>@<shard id prefix>` (an empty prefix matches every shard):

    kill@3fa2   the worker SIGKILLs itself in the middle of that shard (after inference, before the write),
                once per shard: a real process death, as `kill -9` or the kernel's OOM killer would do
    oom@        the shard raises torch's OutOfMemoryError while its batch size is 2 or more
    error@9c1   the shard raises a ValueError on every attempt (a deterministic failure)
    delay@      the shard sleeps ORCHESTRATOR_FAULTS_DELAY seconds (default 1) first: a sweep slow enough
                to lose a node in the middle of

"Once" is kept by marker files in ORCHESTRATOR_FAULTS_DIR (required for `kill`), so a restarted worker does
not fire the same fault again.
"""

from __future__ import annotations

import os
import signal

ENV = "ORCHESTRATOR_FAULTS"
DIR_ENV = "ORCHESTRATOR_FAULTS_DIR"


def _matching(shard_id: str) -> list[str]:
    spec = os.environ.get(ENV, "")
    kinds = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, _, prefix = item.partition("@")
        if shard_id.startswith(prefix):
            kinds.append(kind)
    return kinds


def _first_time(kind: str, shard_id: str) -> bool:
    """True once per (kind, shard) across processes: the marker file is created exclusively."""
    folder = os.environ.get(DIR_ENV)
    if not folder:
        raise RuntimeError(f"{ENV} uses {kind!r}, which needs {DIR_ENV} (a folder for its once-only markers)")
    os.makedirs(folder, exist_ok=True)
    try:
        fd = os.open(os.path.join(folder, f"{kind}-{shard_id}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def before_inference(shard_id: str, batch_size: int) -> None:
    """Faults that strike before a shard's inference (out of memory, a deterministic error)."""
    kinds = _matching(shard_id)
    if "delay" in kinds:
        import time

        time.sleep(float(os.environ.get("ORCHESTRATOR_FAULTS_DELAY", "1")))
    if "oom" in kinds and batch_size >= 2:
        import torch

        raise torch.OutOfMemoryError(f"injected: CUDA out of memory at batch size {batch_size} (shard {shard_id})")
    if "error" in kinds:
        raise ValueError(f"injected: a deterministic error in shard {shard_id}")


def after_inference(shard_id: str) -> None:
    """Faults that strike after inference, before the shard is written (the worker's death)."""
    if "kill" in _matching(shard_id) and _first_time("kill", shard_id):
        os.kill(os.getpid(), signal.SIGKILL)
