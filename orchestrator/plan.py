"""The plan: a sweep's grid expanded into cells and shards with stable ids. Pure.

A shard id is a hash of everything that determines its records (model path,
the commit its revision resolved to, what a local folder holds, dtype, the
task's content hash, the prompt style and its parameters, the example range,
the backend and its context length, and the record format version), so the
same config always gives the same ids and any change that could change a
result gives new ones. A finished shard is found again by its id; nothing is
redone.

A branch name (`main`) or a folder path says nothing about the weights behind
it, so the caller resolves each model first (`orchestrator.resolve`, which
talks to the hub and the disk) and passes the result in: the plan stays a pure
function of plain data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from orchestrator.config import ModelFamily, PromptConfig, SweepConfig
from orchestrator.tasks.task import Task

RECORD_FORMAT_VERSION = 2  # bump when the code that produces records changes their content


def stable_hash(payload: object, length: int = 16) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class Resolved:
    """What one configured model points at, found before planning (orchestrator.resolve).

    `revision` is what the backend loads: for a hub model the commit a branch
    or tag resolved to. `fingerprint` keys a local folder by its content: the
    zoo's spec hash (`zoo:<hash>`), a git tree id (`git:<id>`) or a hash of its
    files (`files:<hash>`). `note` says how, for the manifest and the log.
    """

    revision: str
    fingerprint: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One model of the family, as the plan sees it."""

    family: str
    name: str
    path: str
    revision: str  # what is loaded: the resolved commit for a hub model whose revision was resolved
    params: int
    dtype: str
    tokenizer: str | None = None
    non_embedding_params: int | None = None
    train_flops: float | None = None
    train_step: int | None = None
    trust_remote_code: bool = False
    requested_revision: str | None = None  # the configured revision (a branch or tag) when it resolved to another
    fingerprint: str | None = None  # a local folder's content key (see Resolved)

    @property
    def identity(self) -> dict[str, object]:
        """What about the model determines its outputs (not its display name)."""
        return {"path": self.path, "revision": self.revision, "dtype": self.dtype, "tokenizer": self.tokenizer,
                "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class PromptStyle:
    """A named prompt style with its parameters."""

    name: str
    config: PromptConfig

    @property
    def params(self) -> dict[str, object]:
        return asdict(self.config)


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a model size x a task x a prompt style."""

    id: str
    model: ModelSpec
    task: str  # task name in the sweep
    task_id: str  # name@content-hash
    prompt: PromptStyle
    n_examples: int

    @property
    def label(self) -> str:
        return f"{self.model.name}/{self.task}/{self.prompt.name}"


@dataclass(frozen=True)
class Shard:
    """A contiguous range of a cell's examples: the unit of work, storage and retry."""

    id: str
    cell_id: str
    start: int  # positions in the task's example list, [start, stop)
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    sweep_id: str
    models: tuple[ModelSpec, ...]
    cells: tuple[Cell, ...]
    shards: tuple[Shard, ...]

    @property
    def fingerprint(self) -> str:
        """Identifies the whole grid: the same config gives the same fingerprint."""
        return stable_hash([s.id for s in self.shards])

    def cell(self, cell_id: str) -> Cell:
        return self._cells_by_id()[cell_id]

    def _cells_by_id(self) -> dict[str, Cell]:
        # built once per plan (a frozen dataclass, so cached on the instance): lookups are O(1), not O(cells)
        cached = self.__dict__.get("_by_cell")
        if cached is None:
            cached = {c.id: c for c in self.cells}
            object.__setattr__(self, "_by_cell", cached)
        return cached

    def shards_of(self, cell_id: str) -> list[Shard]:
        """The cell's shards in plan order; O(shards of the cell) after one O(shards) grouping per plan."""
        groups = self.__dict__.get("_shards_by_cell")
        if groups is None:
            groups = {}
            for s in self.shards:
                groups.setdefault(s.cell_id, []).append(s)
            object.__setattr__(self, "_shards_by_cell", groups)
        return list(groups.get(cell_id, ()))

    def shards_by_model(self) -> dict[str, list[Shard]]:
        """Shards grouped by model name, in model order: a worker loads each model once."""
        by_cell = self._cells_by_id()
        out: dict[str, list[Shard]] = {m.name: [] for m in self.models}
        for s in self.shards:
            out[by_cell[s.cell_id].model.name].append(s)
        return out


def model_specs(family: ModelFamily, resolved: Mapping[str, Resolved] | None = None) -> list[ModelSpec]:
    """The selected sizes of a family, smallest first, with each one's resolution when given."""
    specs = []
    for name in family.sizes:
        m = family.catalog[name]
        r = (resolved or {}).get(name)
        specs.append(
            ModelSpec(
                family=family.family,
                name=name,
                path=m.path,
                revision=r.revision if r else m.revision,
                params=int(m.params),
                dtype=family.dtype,
                tokenizer=m.tokenizer,
                non_embedding_params=m.non_embedding_params,
                train_flops=m.train_flops,
                train_step=m.train_step,
                trust_remote_code=family.trust_remote_code,
                requested_revision=m.revision if r and r.revision != m.revision else None,
                fingerprint=r.fingerprint if r else None,
            )
        )
    return sorted(specs, key=lambda s: (s.params, s.train_step or 0, s.name))


def make_plan(cfg: SweepConfig, tasks: dict[str, Task], resolved: Mapping[str, Resolved] | None = None) -> Plan:
    """Expand the grid (sizes x tasks x prompt styles) into cells and shards.

    `resolved` maps size names to what they resolved to; without it, ids use the
    configured revision as written (fine for a pinned commit, not for `main`).
    """
    models = model_specs(cfg.model, resolved)
    cells: list[Cell] = []
    shards: list[Shard] = []
    size = cfg.sweep.shard_size
    for model in models:
        for task_name in sorted(cfg.tasks):
            task = tasks[task_name]
            for prompt_name in sorted(cfg.prompts):
                style = PromptStyle(prompt_name, cfg.prompts[prompt_name])
                cell_key = {
                    "model": model.identity,
                    "task": task.id,
                    "prompt": style.params,
                    "backend": cfg.backend.name,
                    # the context length decides which exemplars are dropped and where prompts are cut
                    "max_length": cfg.backend.max_length,
                    "record_format": RECORD_FORMAT_VERSION,
                }
                cell_id = stable_hash(cell_key)
                n = len(task.examples)
                cells.append(Cell(cell_id, model, task_name, task.id, style, n))
                for start in range(0, n, size):
                    stop = min(start + size, n)
                    shard_id = stable_hash({**cell_key, "range": [start, stop]})
                    shards.append(Shard(shard_id, cell_id, start, stop))
    return Plan(cfg.sweep.name, tuple(models), tuple(cells), tuple(shards))
