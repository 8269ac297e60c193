"""Shared fixtures: a tiny trained model, a config tree with it, and paths to shared data."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIGBENCH = REPO.parent / "shared" / "bigbench"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A GPT-2-style model of a few thousand parameters, trained in seconds on the zoo corpus."""
    from orchestrator.zoo import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory) -> Path:
    """A second tiny model (another seed), standing in for a second size."""
    from orchestrator.zoo import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-b", seed=1)


@pytest.fixture()
def tiny_conf(tmp_path: Path, tiny_model: Path, tiny_model_b: Path) -> Path:
    """An extra config folder with a family of two tiny models; the second is declared 10x larger."""
    from transformers import AutoModelForCausalLM

    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model).parameters())
    d = tmp_path / "conf" / "model"
    d.mkdir(parents=True)
    (d / "tiny.yaml").write_text(
        "family: tiny\nbuild: null\ncatalog:\n"
        f"  tiny-a: {{path: '{tiny_model}', params: {n}}}\n"
        f"  tiny-b: {{path: '{tiny_model_b}', params: {n * 10}}}\n"
        "sizes: [tiny-a, tiny-b]\n"
    )
    return tmp_path / "conf"


def overrides_for(tmp_path: Path, extra_conf: Path, *more: str) -> list[str]:
    """Overrides that keep a test's store, MLflow db and outputs inside tmp_path."""
    return [
        f"hydra.searchpath=[file://{extra_conf}]",
        "model=tiny",
        f"storage.root={tmp_path / 'store'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"sweep.output_dir={tmp_path / 'outputs'}",
        *more,
    ]


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[int]:
    """A real `mlflow server` on 127.0.0.1 with a SQLite store in `folder`; yields its port, stops it after."""
    exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--default-artifact-root",
         str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("mlflow server did not come up in 90 s")
            time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
