"""Damaged shard files are found before a run trusts them, moved aside and recomputed (issue 11, integrity).

Real parts: a tiny sweep on a local Ray cluster writes real shard files; the test damages four of them the
ways a disk, a copy or a person does (truncated, emptied, rewritten with 0 rows, replaced by another shard's
file), and the next `sweep.run` must quarantine exactly those, recompute exactly those, and give the records
of the first run.
"""

from __future__ import annotations

import logging
import shutil

import pandas as pd
import pytest

from orchestrator import sweep
from orchestrator.config import load
from orchestrator.execute import shutdown
from orchestrator.store import SweepStore
from tests.conftest import overrides_for

pytestmark = pytest.mark.integration
OUTPUT_ONLY = ["node", "host", "device", "device_name", "worker", "load_seconds", "shard_seconds", "seconds"]


def _file(folder, sid: str):
    """The shard's file, whichever passes its name says it holds (`<id>.parquet`, `<id>.generate+targets.parquet`)."""
    (found,) = folder.glob(f"{sid}.*parquet")
    return found


def _records(folder, sid: str) -> pd.DataFrame:
    df = pd.read_parquet(_file(folder, sid))
    return df.drop(columns=[c for c in df.columns if c in OUTPUT_ONLY or "seconds" in c])


def test_damaged_shards_are_quarantined_and_recomputed(tmp_path, tiny_conf, caplog):
    cfg = load(overrides_for(tmp_path, tiny_conf, "task=[add_2]", "prompt=[zero_shot]", "tasks.add_2.n=12",
                             "sweep.shard_size=4", "sweep.name=integ", "cluster.num_cpus=2",
                             "backend.batch_size=8", "tracking.enabled=false"))
    shards = tmp_path / "store" / "integ" / "shards"
    try:
        first = sweep.run(cfg, progress=False)
        assert first.failed == {} and first.shards_run == 6
        ids = sorted(s.id for s in first.plan.shards)
        before = {sid: _records(shards, sid) for sid in ids}
        truncated, empty, zero, other, *kept = ids
        data = _file(shards, truncated).read_bytes()
        _file(shards, truncated).write_bytes(data[: len(data) - 40])
        _file(shards, empty).write_bytes(b"")
        _file(shards, zero).unlink()
        SweepStore(cfg.storage.root, "integ").write_shard(zero, [])  # valid parquet, 0 rows
        shutil.copyfile(_file(shards, kept[0]), _file(shards, other))  # another shard's records
        mtimes = {sid: _file(shards, sid).stat().st_mtime_ns for sid in kept}

        with caplog.at_level(logging.WARNING, logger="orchestrator.store"):
            second = sweep.run(cfg, progress=False)
    finally:
        shutdown()
    damaged = sorted([truncated, empty, zero, other])
    assert second.failed == {} and second.shards_run == 4 and second.shards_skipped == 2
    quarantined = sorted(p.name.split(".")[0] for p in (tmp_path / "store" / "integ" / "quarantine").iterdir())
    assert quarantined == damaged
    for sid in damaged:
        assert f"shard {sid} is damaged" in caplog.text
    assert {sid: _file(shards, sid).stat().st_mtime_ns for sid in kept} == mtimes  # not recomputed
    for sid in ids:  # every shard holds its own records again, equal to the first run's
        pd.testing.assert_frame_equal(_records(shards, sid), before[sid])
    assert len(second.cells) == 2 and all(c.n_examples == 12 for c in second.cells)
    assert [c.scores["exact_match"]["mean"] for c in second.cells] == \
        [c.scores["exact_match"]["mean"] for c in first.cells]
