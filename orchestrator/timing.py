"""Where a sweep's driver spends its wall time: consecutive named laps.

A sweep activates one `Timings` (`collect`); after each step the driver calls
`lap(name)`, which books the time since the previous lap (or since `collect`
began) under `name`. Laps follow each other, so they add up to the wall time
inside `collect`, and `other` is the time after the last lap. A step is marked by
one line after it, not by wrapping it. Outside `collect`, `lap` does nothing: a
rescore or a test pays nothing. No I/O here; the sweep writes `to_dict()` as
`timings.json` beside its report.

Model load and inference run in the replicas, in parallel with each other; their
seconds are in each shard's Provenance (load_seconds, shard_seconds, ...), not
here. On the driver they fall inside the `execute` lap.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Seconds booked per name (a name may be booked several times) and the wall time inside `collect`."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    serving: dict[str, float] = field(default_factory=dict)  # model -> replica-seconds its replicas held it loaded
    wall: float = 0.0
    _last: float | None = None  # perf_counter() of the previous lap, while collecting

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + 1

    @property
    def other(self) -> float:
        """Wall time inside `collect` that no lap booked (never negative)."""
        return max(0.0, self.wall - sum(self.seconds.values()))

    def to_dict(self) -> dict:
        return {
            "wall_seconds": round(self.wall, 4),
            "phases": {k: round(v, 4) for k, v in self.seconds.items()},
            "other_seconds": round(self.other, 4),
            "counts": dict(self.counts),
            "serving_seconds": {k: round(v, 4) for k, v in self.serving.items()},
        }


_ACTIVE: ContextVar[Timings | None] = ContextVar("orchestrator_timings", default=None)


@contextmanager
def collect(timings: Timings | None = None) -> Iterator[Timings]:
    """Make `timings` (a new one by default) the one `lap` books into, until the block ends."""
    timings = timings if timings is not None else Timings()
    token = _ACTIVE.set(timings)
    t0 = time.perf_counter()
    timings._last = t0
    try:
        yield timings
    finally:
        timings.wall += time.perf_counter() - t0
        timings._last = None
        _ACTIVE.reset(token)


def serving(model: str, seconds: float) -> None:
    """Book replica-seconds during which a replica held `model` loaded and ready (from its load's end to its
    handoff, retirement or the end of execution); nothing outside `collect`."""
    timings = _ACTIVE.get()
    if timings is not None:
        timings.serving[model] = timings.serving.get(model, 0.0) + seconds


def lap(name: str) -> None:
    """Book the seconds since the previous lap under `name` in the active Timings; nothing without one."""
    timings = _ACTIVE.get()
    if timings is None or timings._last is None:
        return
    now = time.perf_counter()
    timings.add(name, now - timings._last)
    timings._last = now
