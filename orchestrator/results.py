"""Results for notebooks: a sweep's records as tidy pandas DataFrames, read from the store.

    from orchestrator import results
    examples = results.load("demo")               # one row per example x cell
    cells = results.load("demo", level="cell")    # one row per cell, a column per metric

Both levels name a cell by the same columns, `model`, `params`, `task` and
`prompt_style` (and `train_step` for checkpoints of one model), so they join
on them. In example rows, `prompt` is the rendered prompt the model read (a
field of every record); the prompt style's name is `prompt_style` at both
levels, never `prompt`.
"""

from __future__ import annotations

import io

import pandas as pd

from orchestrator.store import SweepStore

CELL_KEYS = ("model", "params", "train_step", "task", "prompt_style")
LEVELS = ("example", "cell")


def load(sweep: str, root: str = "results", level: str = "example", options: dict | None = None) -> pd.DataFrame:
    """Read a sweep from any fsspec root; `level` is "example" or "cell"; `options` as storage.options."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is unknown; use 'example' or 'cell'")
    store = SweepStore(root, sweep, options)
    if not store.has("manifest.json"):
        raise FileNotFoundError(f"no sweep {sweep!r} under {root!r}: manifest.json is missing")
    if level == "cell":
        if not store.has("cells.csv"):
            raise FileNotFoundError(
                f"sweep {sweep!r} under {root!r} has no cells.csv yet (no cell finished scoring); "
                f"run `orchestrator rescore {sweep} --root {root}` once shards exist"
            )
        cells = pd.read_csv(io.StringIO(store.read_text("cells.csv")))
        return cells.rename(columns={"prompt": "prompt_style"})
    manifest = store.read_json("manifest.json")
    done = store.done()
    frames = []
    for cell in manifest["cells"]:
        ids = [s for s in cell["shards"] if s in done]
        if not ids:
            continue
        df = store.read_shards(ids)
        keys = {
            "model": cell["model"],
            "params": cell["params"],
            "train_step": cell.get("train_step"),
            "task": cell["task"],
            "prompt_style": cell["prompt"],
        }
        clash = [k for k in keys if k in df.columns]
        if clash:  # a record field named like a cell key would be silently overwritten
            raise ValueError(f"sweep {sweep!r}: records already have columns {clash}; cannot add the cell's")
        cell_cols = pd.DataFrame({k: [v] * len(df) for k, v in keys.items()}, index=df.index)
        frames.append(pd.concat([cell_cols, df], axis=1))
    if not frames:
        return pd.DataFrame(columns=list(CELL_KEYS))
    out = pd.concat(frames, ignore_index=True)
    if out["train_step"].isna().all():
        out = out.drop(columns="train_step")
    return out
