"""Results for notebooks: a sweep's records as tidy pandas DataFrames, read from the store.

    from orchestrator import results
    examples = results.load("demo")               # one row per example x cell
    cells = results.load("demo", level="cell")    # one row per cell, a column per metric
"""

from __future__ import annotations

import io

import pandas as pd

from orchestrator.store import SweepStore


def load(sweep: str, root: str = "results", level: str = "example") -> pd.DataFrame:
    """Read a sweep from any fsspec root; `level` is "example" or "cell"."""
    store = SweepStore(root, sweep)
    if not store.has("manifest.json"):
        raise FileNotFoundError(f"no sweep {sweep!r} under {root!r}: manifest.json is missing")
    if level == "cell":
        return pd.read_csv(io.StringIO(store.read_text("cells.csv")))
    if level != "example":
        raise ValueError(f"level={level!r}; use 'example' or 'cell'")
    manifest = store.read_json("manifest.json")
    done = store.done()
    frames = []
    for cell in manifest["cells"]:
        ids = [s for s in cell["shards"] if s in done]
        if not ids:
            continue
        df = store.read_shards(ids)
        for key in ("model", "params", "task", "prompt"):
            df.insert(0, key, cell[key])
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
