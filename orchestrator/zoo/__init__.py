"""The embedded model zoo: a family of tiny GPT-2 character models trained here, offline.

It lets a sweep run end to end with no hub access, and its curves show the
phenomena the tool measures: exact match on long sums rising sharply with
size while per-character metrics improve smoothly.
"""

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
from orchestrator.zoo.train import build, build_tiny, is_built, read_card, zoo_dir

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
