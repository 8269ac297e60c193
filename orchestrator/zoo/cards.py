"""Where zoo members live and whether each is built with the current spec: no torch, so resolving a member
(every sweep on the zoo does, in the driver) costs no import of torch or transformers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator.zoo.corpus import DEFAULT_CORPUS, CorpusSpec
from orchestrator.zoo.family import FAMILY, MemberSpec, checkpoint_name, resolve, spec_hash

CARD = "model_card.json"


def zoo_dir() -> Path:
    """Where built members live: $ORCHESTRATOR_ZOO_DIR, else ~/.cache/orchestrator/zoo."""
    env = os.environ.get("ORCHESTRATOR_ZOO_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "orchestrator" / "zoo"


def read_card(path: Path) -> dict | None:
    """A member's model card, or None when it is missing or unreadable (treated as not built)."""
    try:
        return json.loads((path / CARD).read_text())
    except (OSError, ValueError):
        return None


def _up_to_date(path: Path, spec: MemberSpec, corpus: CorpusSpec, step: int | None = None) -> bool:
    card = read_card(path)
    if card is None or card.get("spec_hash") != spec_hash(spec, corpus):
        return False
    return step is None or card.get("train_step") == step


def _targets(names: list[str] | None) -> list[tuple[MemberSpec, int | None]]:
    """What to build: the named members and checkpoints, or (names=None) every member's final model."""
    return [(s, None) for s in FAMILY] if names is None else [resolve(n) for n in names]


def _path(out_dir: Path, spec: MemberSpec, step: int | None) -> Path:
    return out_dir / (spec.name if step is None else checkpoint_name(spec.name, step))


def is_built(out_dir: Path | None = None, names: list[str] | None = None) -> bool:
    """True when every named member or checkpoint (default: every member) is saved with the current spec."""
    root = zoo_dir() if out_dir is None else Path(out_dir)
    return all(_up_to_date(_path(root, s, k), s, DEFAULT_CORPUS, k) for s, k in _targets(names))
