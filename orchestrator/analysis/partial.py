"""Cells the sweep planned but did not finish: said out loud wherever results are shown. Pure.

A cell is scored only when every one of its shards is in the store; a cell
with a missing or failed shard is *partial*. Dropping it from a curve without
a word would let a verdict rest on fewer sizes than the sweep planned (a
3-size curve that lost its middle size can flip from emergent to smooth), so
the list of partial cells travels with the analysis as data: the verdicts
caveat the curves that lack a planned size, and the report, the terminal
summary, cells.csv and MLflow name each partial cell, why, and the command
that resumes the sweep (only missing and failed shards run again).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.secrets import redact_text

if TYPE_CHECKING:
    from orchestrator.plan import Plan


@dataclass(frozen=True)
class PartialCell:
    """A planned cell without all its shards in the store, and why (the failed shards' errors; None: not run)."""

    cell_id: str
    model: str
    params: int
    task: str
    prompt: str
    shards_done: int
    shards_total: int
    reason: str | None = None
    train_step: int | None = None  # for a family whose members are checkpoints of one model

    @property
    def shards(self) -> str:
        return f"{self.shards_done}/{self.shards_total} shards"

    @property
    def why(self) -> str:
        """The failed shards' error, or what a shard with no recorded failure means."""
        return self.reason or "not run yet (missing: the sweep was interrupted, or these shards never ran)"

    def describe(self) -> str:
        """One line: which cell, how far it got, and why."""
        return f"{self.model} ({_size(self.params)}) {self.task}/{self.prompt}: {self.shards} ({self.why})"


def incomplete_cells(plan: Plan, done: Iterable[str], failed: Mapping[str, str] | None = None) -> list[PartialCell]:
    """Every planned cell whose shards are not all in `done`, with the reason from `failed` (shard id -> error).

    Several failed shards of one cell with the same error give it once, with a count.
    """
    done = set(done)
    failed = failed or {}
    out = []
    for cell in plan.cells:
        ids = [s.id for s in plan.shards_of(cell.id)]
        n_done = sum(i in done for i in ids)
        if ids and n_done == len(ids):
            continue
        errors: dict[str, int] = {}
        for i in ids:
            if i not in done and i in failed:
                errors[str(failed[i])] = errors.get(str(failed[i]), 0) + 1
        reason = "; ".join(f"{n} shard(s) failed: {e}" for e, n in errors.items()) or None
        out.append(PartialCell(cell.id, cell.model.name, cell.model.params, cell.task, cell.prompt.name,
                               n_done, len(ids), None if reason is None else redact_text(reason),
                               cell.model.train_step))
    return out


def failure_reasons(records: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """Shard id -> "ErrorClass: message" from the store's failure records (store.failures())."""
    out = {}
    for sid, r in records.items():
        err, msg = r.get("error"), r.get("message")
        out[sid] = f"{err}: {msg}" if err and msg else str(msg or err or "failed")
    return out


def headline(partial: Sequence[PartialCell], n_cells: int) -> str:
    """'partial: k of n cells incomplete' (the report's banner, the MLflow tag's words)."""
    return f"partial: {len(partial)} of {n_cells} cells incomplete"


def tag_value(partial: Sequence[PartialCell], n_cells: int) -> str:
    """The parent run's `orchestrator.partial` tag."""
    return f"{len(partial)}/{n_cells} cells incomplete"


def resume_command(sweep_id: str, root: str) -> str:
    """The command that runs a stored sweep's missing and failed shards (credentials in `root` masked)."""
    return f"orchestrator resume {shlex.quote(sweep_id)} --root {shlex.quote(redact_text(root))}"


def missing_for(task: str, prompt: str, partial: Iterable[PartialCell]) -> list[PartialCell]:
    """The partial cells of one task x prompt style: the sizes its curves lack, smallest first."""
    return sorted((p for p in partial if p.task == task and p.prompt == prompt), key=lambda p: (p.params, p.model))


def missing_caveat(missing: Sequence[PartialCell], n_sizes: int) -> str:
    """A verdict's caveat naming the planned sizes its curve lacks."""
    names = ", ".join(f"{p.model} ({_size(p.params)}, {p.shards})" for p in missing)
    return (f"partial: judged on {n_sizes} size(s); the sweep also planned {names}, whose cell(s) are incomplete: "
            "the label may change once they are in (resume the sweep), so its confidence is at most borderline")


def _size(v: float) -> str:
    for unit, f in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= f:
            return f"{v / f:.3g}{unit}"
    return f"{v:.3g}"
