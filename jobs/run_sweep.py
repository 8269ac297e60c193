"""Cluster entry point: run (or resume) a sweep inside a Ray job.

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env-json '{"excludes": ["results", "outputs", ".venv", ".git", "mlruns", "*.db"]}' \
        -- python jobs/run_sweep.py experiment=demo cluster=ray tracking=server

Thin by design: parse the overrides, call the library. Re-submitting the same
command resumes the sweep: finished shards are found in the store.
"""

from __future__ import annotations

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
