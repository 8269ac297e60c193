"""What a rerun need not redo: shard files already verified, and cells already scored. Kept in the store.

    {sweep_id}/cache/verified.json          shard id -> [file name, size, rows checksum] of files whose footer
                                            was checked (store.SweepStore.verify)
    {sweep_id}/cache/cells/{cell_id}.json   the cell's scores (a CellResult) and the key they were made under
    {sweep_id}/cache/parts/{cell_id}.npz    its shards' partials (orchestrator.partials): per metric one row per
                                            record, and each shard's counts, by shard id and rows checksum

A rerun of a finished sweep otherwise reads every shard's footer (verify) and every shard's rows, and
recomputes every bootstrap: minutes at 100,000 shards for nothing. With these, a file is trusted when the
listing shows it under the name and size it had when its footer was checked, and a cell's scores are reused
when its key is unchanged: the cell, its shards' ids and rows checksums, the metrics and their settings
(bootstrap samples and seed, subset_k, metric modules), the task's answer regex and the source of the code
that turns records into scores (`scoring_source`: the metric library, scoring and
score normalisation, and the module that defines each metric asked for, a user's own included), so an
edited metric is never served from the cache, even in an uncommitted tree or a Ray job's copy without git.
A resume that adds one shard to a cell reads that shard only: the cell's other shards give their partials
(kept when the cell was last scored, or, for a cell a run left incomplete, when that run recorded), and the
cell's bootstrap is made again from the pooled rows (exactly the numbers scoring every record gives). A
metric that needs the whole cell at once (`Metric.poolable` false: a user's group or cell metric without
per-record `stats`, or a `chance` that is not a `record_chance`) makes its cells read every shard, as before.
A shard written in this run enters
the index as it lands (`VerifiedIndex.landed`, from `SweepStore.written`), so the cells the live view scores
while the sweep runs are cache hits for the sweep's final record.

Trust has one gap, said here: a shard file replaced outside orchestrator by another of the same name and
size is not checked again (orchestrator itself never rewrites a verified file in place: a shard it runs
again was missing or lacked passes, so its index entry is dropped before it lands). Deleting `cache/` is
always safe: the next run checks and scores everything again and writes it back.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from orchestrator.analysis.curves import CellResult
from orchestrator.config import MetricsConfig
from orchestrator.metrics import MetricContext
from orchestrator.partials import ShardPartial
from orchestrator.plan import Cell
from orchestrator.store import SweepStore
from orchestrator.tasks.task import Task

log = logging.getLogger(__name__)

INDEX = "cache/verified.json"
CELLS = "cache/cells"
PARTS = "cache/parts"
VERSION = 1  # bump when what a key covers or how a CellResult is stored changes


# the package's modules that turn records into a CellResult, besides each metric's own module
_SCORING_MODULES = ("orchestrator.metrics.registry", "orchestrator.metrics.aggregate", "orchestrator.scoring",
                    "orchestrator.analysis.scores", "orchestrator.analysis.curves", "orchestrator.record",
                    "orchestrator.partials")


def scoring_source(names: list[str]) -> str:
    """sha256 of the source of the scoring modules and of every module defining a metric in `names`; "" when
    one cannot be read (a metric defined in a notebook cell), and then nothing is cached."""
    import importlib
    import inspect

    from orchestrator.metrics import get

    modules = set(_SCORING_MODULES)
    for name in names:
        m = get(name)
        for fn in (m.fn, m.stats, getattr(m.stats, "__wrapped__", None), m.reduce, m.groups, m.chance_fn,
                   getattr(m.chance_fn, "per_record", None)):
            if fn is not None:
                modules.add(fn.__module__)
    digest = hashlib.sha256()
    for mod in sorted(modules):
        try:
            digest.update(mod.encode() + b"\0" + inspect.getsource(importlib.import_module(mod)).encode() + b"\0")
        except (OSError, TypeError, ImportError):
            return ""
    return digest.hexdigest()


class VerifiedIndex:
    """Shard files whose footers were checked, by id: [file name, size, rows checksum]."""

    def __init__(self, store: SweepStore, entries: dict[str, list] | None = None):
        self.store = store
        self.entries: dict[str, list] = dict(entries or {})

    @classmethod
    def load(cls, store: SweepStore) -> VerifiedIndex:
        """The stored index, or an empty one (none yet, unreadable, or of another version)."""
        try:
            if store.has(INDEX):
                data = store.read_json(INDEX)
                if data.get("version") == VERSION:
                    return cls(store, data.get("shards") or {})
        except Exception as e:  # noqa: BLE001 - a cache: anything wrong with it means "check everything"
            log.warning("ignoring %s (%s: %s); every shard file is checked again", INDEX, type(e).__name__, e)
        return cls(store)

    def landed(self, shard_id: str, entry: list | None) -> None:
        """A shard written whole in this run (`SweepStore.written`): trusted without a footer check. Saved by
        the caller (`save`) once the run's shards have landed, not per shard."""
        if entry:
            self.entries[shard_id] = list(entry)

    def save(self) -> None:
        blob = json.dumps({"version": VERSION, "shards": self.entries}, separators=(",", ":"), sort_keys=True)
        self.store.write_bytes(INDEX, blob.encode())

    def current(self, listing: dict[str, int]) -> dict[str, str]:
        """Shard id -> rows checksum, for the listed shards whose file still has the name and size it was
        checked with."""
        names = getattr(self.store, "_names", {})  # shard id -> file name, from the last listing
        out = {}
        for sid, size in listing.items():
            e = self.entries.get(sid)
            if e is not None and e[1] == size and e[0] == names.get(sid, f"{sid}.parquet"):
                out[sid] = e[2]
        return out

    def verify(self, shard_ids: Iterable[str], expected_rows: dict[str, int] | None = None,
               listing: dict[str, int] | None = None) -> list[str]:
        """`SweepStore.verify` of the files of `shard_ids` not checked before under their current name and size.
        The index then holds the good ones, and keeps other listed files' entries while they are current; an
        entry of a file not listed (a shard that may be run again now) is dropped. Saved when it changed.
        Returns the bad ids (quarantined). `listing` (shard id -> size) is the store's, when the caller just
        listed it."""
        listing = self.store._listing() if listing is None else listing
        wanted = [sid for sid in shard_ids if sid in listing]
        known = self.current(listing)
        todo = [sid for sid in wanted if sid not in known]
        bad = set(self.store.verify(todo, expected_rows)) if todo else set()
        sums = getattr(self.store, "footer_checksums", {})
        names = getattr(self.store, "_names", {})  # shard id -> file name, from the last listing
        wanted_set = set(wanted)
        fresh = {sid: self.entries[sid] for sid in known if sid not in wanted_set}
        for sid in wanted:
            if sid in bad:
                continue
            if sid in known:
                fresh[sid] = self.entries[sid]
            else:
                fresh[sid] = [names.get(sid, f"{sid}.parquet"), listing[sid], sums.get(sid, "")]
        if fresh != self.entries:
            self.entries = fresh
            self.save()
        if todo:
            log.info("verified %d shard file(s); %d trusted from %s", len(todo), len(known), INDEX)
        return sorted(bad)


class CellCache:
    """Scored cells in the store, reused while their key holds (see the module doc)."""

    def __init__(self, store: SweepStore, metrics: MetricsConfig, listing: dict[str, int] | None = None,
                 checksums: dict[str, str] | None = None):
        """`checksums` (shard id -> rows checksum) when the caller holds them, else from the verified index and
        `listing` (the store's, listed again when None)."""
        self.store = store
        if checksums is None:
            checksums = VerifiedIndex.load(store).current(store._listing() if listing is None else listing)
        self.checksums = checksums
        self.settings = {
            # not the code version: it moves with every commit (a README edit would drop every cell), and what of
            # the code makes scores is in `source`
            "version": VERSION, "modules": list(metrics.modules), "subset_k": metrics.subset_k,
            "bootstrap_samples": metrics.bootstrap_samples, "bootstrap_seed": metrics.bootstrap_seed,
            "source": scoring_source(list(metrics.names)),
        }
        self.hits = 0
        self.misses = 0

    def key(self, cell: Cell, shard_ids: list[str], names: list[str], task: Task) -> str | None:
        """The cell's key, or None when a shard has no trusted checksum or a metric's source cannot be read
        (then it is scored, not cached)."""
        sums = [self.checksums.get(sid) for sid in shard_ids]
        if not all(sums) or not self.settings["source"]:
            return None
        payload = {**self.settings, "cell": cell.id, "shards": list(zip(shard_ids, sums, strict=True)),
                   "metrics": list(names), "output_regex": task.output_regex}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def get(self, cell: Cell, key: str | None) -> CellResult | None:
        """The cached scores of `cell` under `key`, with the plan's current names for it; None on a miss."""
        if key is None:
            self.misses += 1
            return None
        name = f"{CELLS}/{cell.id}.json"
        try:
            data = self.store.read_json(name)
        except FileNotFoundError:
            data = None
        except Exception as e:  # noqa: BLE001 - a damaged cache entry is a miss
            log.warning("ignoring %s (%s)", name, type(e).__name__)
            data = None
        if not data or data.get("key") != key:
            self.misses += 1
            return None
        self.hits += 1
        m = cell.model
        return replace(CellResult(**data["result"]), model=m.name, params=m.params, task=cell.task,
                       prompt=cell.prompt.name, non_embedding_params=m.non_embedding_params,
                       train_flops=m.train_flops, train_step=m.train_step)

    def put(self, cell: Cell, key: str | None, result: CellResult) -> None:
        if key is None:
            return
        body: dict[str, Any] = {"key": key, "result": asdict(result)}
        self.store.write_bytes(f"{CELLS}/{cell.id}.json", json.dumps(body, sort_keys=True).encode())

    # -- shard partials ------------------------------------------------------------------------------------
    def _parts_key(self, names: list[str], ctx: MetricContext) -> str:
        """What a shard's partial depends on besides its rows: the scoring code, the metrics asked (in order)
        and the context they are computed in; not the bootstrap, which is made from them each time."""
        payload = {"version": VERSION, "modules": self.settings["modules"], "source": self.settings["source"],
                   "names": list(names), "output_regex": ctx.output_regex, "subset_k": ctx.subset_k,
                   "seed": ctx.seed}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def parts(self, cell: Cell, names: list[str], ctx: MetricContext) -> dict[str, ShardPartial]:
        """The kept partials of `cell`'s shards still current: made under the same key, for a shard whose file
        has the rows checksum it had then. {} when there are none (or the file is unreadable: a cache)."""
        if not self.settings["source"]:
            return {}
        name = f"{PARTS}/{cell.id}.npz"
        try:
            blob = self.store.read_bytes(name)
        except FileNotFoundError:
            return {}
        except Exception as e:  # noqa: BLE001 - a cache: anything wrong means "read the shards"
            log.warning("ignoring %s (%s)", name, type(e).__name__)
            return {}
        try:
            return _decode(blob, self._parts_key(names, ctx), names, self.checksums)
        except Exception as e:  # noqa: BLE001
            log.warning("ignoring %s (%s: %s)", name, type(e).__name__, e)
            return {}

    def put_parts(self, cell: Cell, names: list[str], ctx: MetricContext, parts: dict[str, ShardPartial],
                  order: list[str]) -> None:
        """Keep the partials of `order`'s shards (the cell's, in plan order) that have a trusted checksum."""
        if not self.settings["source"]:
            return
        keep = [sid for sid in order if sid in parts and self.checksums.get(sid)]
        if not keep:
            return
        try:
            blob = _encode(self._parts_key(names, ctx), names, [(sid, self.checksums[sid], parts[sid]) for sid in keep])
        except ValueError as e:  # rows of one metric of different widths: not kept, the shards are read next time
            log.warning("cell %s: shard partials not kept (%s)", cell.id, e)
            return
        self.store.write_bytes(f"{PARTS}/{cell.id}.npz", blob)


def _encode(key: str, names: list[str], shards: list[tuple[str, str, ShardPartial]]) -> bytes:
    """One .npz: a JSON header (key, metric names, each shard's id, checksum and counts) and per metric its
    rows (and per-record chance) over the shards in the header's order."""
    header = {"key": key, "names": list(names),
              "shards": [[sid, csum, p.n, p.shots_dropped, p.truncated, list(p.nodes), p.seconds, p.gpus, p.old]
                         for sid, csum, p in shards],
              "chance": [n for n in names if all(n in p.chance for _, _, p in shards if p.n)]}
    arrays: dict[str, np.ndarray] = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, n in enumerate(names):
        got = [p.rows[n] for _, _, p in shards if len(p.rows[n])]
        arrays[f"r{i}"] = np.vstack(got) if got else np.zeros((0, 1))
        if n in header["chance"]:
            arrays[f"c{i}"] = np.concatenate([np.zeros(0)] + [p.chance[n] for _, _, p in shards if p.n])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _decode(blob: bytes, key: str, names: list[str], checksums: dict[str, str]) -> dict[str, ShardPartial]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes().decode())
        if header.get("key") != key or header.get("names") != list(names):
            return {}
        rows = {n: z[f"r{i}"] for i, n in enumerate(names)}
        chance = {n: z[f"c{i}"] for i, n in enumerate(names) if n in header["chance"]}
    out, at = {}, 0
    for sid, csum, n, shots, trunc, nodes, seconds, gpus, old in header["shards"]:
        if csum and checksums.get(sid) == csum:
            out[sid] = ShardPartial(n=n, shots_dropped=shots, truncated=trunc, nodes=tuple(nodes), seconds=seconds,
                                    gpus=gpus, old=old,
                                    rows={m: r[at:at + n] if n else np.zeros((0, 1)) for m, r in rows.items()},
                                    chance={m: c[at:at + n] for m, c in chance.items()} if n else {})
        at += n
    return out
