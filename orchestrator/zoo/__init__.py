"""The embedded model zoo: a family of tiny GPT-2 character models trained here, offline.

It lets a sweep run end to end with no hub access, and its curves show the
phenomena the tool measures: exact match on long sums rising sharply with
size while per-character metrics improve smoothly.
"""

from orchestrator.zoo.cards import is_built, read_card, zoo_dir
from orchestrator.zoo.corpus import DEFAULT_CORPUS, CorpusSpec, build_corpus
from orchestrator.zoo.family import (
    CHECKPOINT_STEPS,
    FAMILY,
    MemberSpec,
    checkpoint_name,
    gpt2_config,
    known_names,
    member,
    param_counts,
    resolve,
    spec_hash,
)


def __getattr__(name: str):
    """`build` and `build_tiny` import torch: loaded when first used, so resolving members stays light."""
    if name in ("build", "build_tiny"):
        from orchestrator.zoo import train

        return getattr(train, name)
    raise AttributeError(f"module 'orchestrator.zoo' has no attribute {name!r}")

__all__ = [
    "CHECKPOINT_STEPS",
    "DEFAULT_CORPUS",
    "FAMILY",
    "CorpusSpec",
    "MemberSpec",
    "build",
    "build_corpus",
    "build_tiny",
    "checkpoint_name",
    "gpt2_config",
    "is_built",
    "known_names",
    "member",
    "param_counts",
    "read_card",
    "resolve",
    "spec_hash",
    "zoo_dir",
]
