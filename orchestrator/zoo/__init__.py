"""The embedded model zoo: a family of tiny GPT-2 character models trained here, offline.

It lets a sweep run end to end with no hub access, and its curves show the
phenomena the tool measures: exact match on long sums rising sharply with
size while per-character metrics improve smoothly.
"""

from orchestrator.zoo.corpus import DEFAULT_CORPUS, CorpusSpec, build_corpus
from orchestrator.zoo.family import FAMILY, MemberSpec, gpt2_config, member, param_counts, spec_hash
from orchestrator.zoo.train import build, build_tiny, is_built, read_card, zoo_dir

__all__ = [
    "DEFAULT_CORPUS",
    "FAMILY",
    "CorpusSpec",
    "MemberSpec",
    "build",
    "build_corpus",
    "build_tiny",
    "gpt2_config",
    "is_built",
    "member",
    "param_counts",
    "read_card",
    "spec_hash",
    "zoo_dir",
]
