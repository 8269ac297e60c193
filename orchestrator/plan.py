"""The plan: a sweep's grid expanded into cells and shards with stable ids. Pure.

A shard id is a hash of everything that determines its records (model path and
revision, dtype, the task's content hash, the prompt style and its parameters,
the example range, the backend, and the record format version), so the same
config always gives the same ids and any change that could change a result
gives new ones. A finished shard is found again by its id; nothing is redone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from orchestrator.config import ModelFamily, PromptConfig, SweepConfig
from orchestrator.tasks.task import Task

RECORD_FORMAT_VERSION = 2  # bump when the code that produces records changes their content


def stable_hash(payload: object, length: int = 16) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class ModelSpec:
    """One model of the family, as the plan sees it."""

    family: str
    name: str
    path: str
    revision: str
    params: int
    dtype: str
    tokenizer: str | None = None
    non_embedding_params: int | None = None
    train_flops: float | None = None
    train_step: int | None = None
    trust_remote_code: bool = False

    @property
    def identity(self) -> dict[str, object]:
        """What about the model determines its outputs (not its display name)."""
        return {"path": self.path, "revision": self.revision, "dtype": self.dtype, "tokenizer": self.tokenizer}


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
        return {c.id: c for c in self.cells}

    def shards_of(self, cell_id: str) -> list[Shard]:
        return [s for s in self.shards if s.cell_id == cell_id]

    def shards_by_model(self) -> dict[str, list[Shard]]:
        """Shards grouped by model name, in model order: a worker loads each model once."""
        by_cell = self._cells_by_id()
        out: dict[str, list[Shard]] = {m.name: [] for m in self.models}
        for s in self.shards:
            out[by_cell[s.cell_id].model.name].append(s)
        return out


def model_specs(family: ModelFamily) -> list[ModelSpec]:
    """The selected sizes of a family, smallest first."""
    specs = []
    for name in family.sizes:
        m = family.catalog[name]
        specs.append(
            ModelSpec(
                family=family.family,
                name=name,
                path=m.path,
                revision=m.revision,
                params=int(m.params),
                dtype=family.dtype,
                tokenizer=m.tokenizer,
                non_embedding_params=m.non_embedding_params,
                train_flops=m.train_flops,
                train_step=m.train_step,
                trust_remote_code=family.trust_remote_code,
            )
        )
    return sorted(specs, key=lambda s: (s.params, s.train_step or 0, s.name))


def make_plan(cfg: SweepConfig, tasks: dict[str, Task]) -> Plan:
    """Expand the grid (sizes x tasks x prompt styles) into cells and shards."""
    models = model_specs(cfg.model)
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
