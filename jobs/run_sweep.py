"""Cluster entry point: run (or resume) a sweep inside a Ray job.

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env-json '{"excludes": ["results", "outputs", ".venv", ".git", "mlruns", "*.db"]}' \
        -- python jobs/run_sweep.py experiment=demo cluster=ray tracking=server \
           storage=s3 storage.root=s3://my-bucket/orchestrator

The store must be one every node reaches (an s3:// or gs:// URL, or an
absolute path on a shared filesystem): a relative root would land in Ray's
per-job working folder, so a sweep on a cluster refuses it.

Thin by design: parse the overrides, call the library. Re-submitting the same
command resumes the sweep: finished shards are found in the store.
"""

from __future__ import annotations

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
