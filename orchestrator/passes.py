"""Passes: which inference a shard runs, decided by the metrics the sweep asks for. Pure.

A record can be filled by three passes over the model: `generate` (greedy
generation: the answer and its tokens), `targets` (log-likelihood of each
target) and `choices` (log-likelihood of each answer option). A zero-shot
generative cell scored only by exact match needs the first; scoring the
target and four options by log-likelihood as well costs five more forward
passes per example. So a sweep runs only the passes its metrics need.

What a metric needs is read from its `needs` (the record fields it reads):
a field written by a pass asks for that pass. A metric that names no such
field (a user's metric with `needs=()`) may read anything, so it gets every
pass: a missing pass can never turn into a silent NaN.

A shard file says which passes it holds (`file_suffix`): a shard with fewer
passes than a later run needs is run again with both sets, and a cell scores
a metric only where every one of its shards holds the passes the metric needs.
"""

from __future__ import annotations

from collections.abc import Iterable

GENERATE, TARGETS, CHOICES = "generate", "targets", "choices"
ALL: frozenset[str] = frozenset({GENERATE, TARGETS, CHOICES})
ORDER = (GENERATE, TARGETS, CHOICES)

# the record fields each pass writes (orchestrator.record.Record); "generated" is True only where text was generated
FIELDS: dict[str, frozenset[str]] = {
    GENERATE: frozenset({"generated", "generation", "answer", "generation_token_ids", "answer_token_ids",
                         "target_answer_token_ids"}),
    TARGETS: frozenset({"target_logprobs", "likely_target", "target_token_ids", "target_token_logprobs",
                        "target_is_greedy", "target_truncated"}),
    CHOICES: frozenset({"choice_logprobs", "choice_n_tokens", "choice_truncated"}),
}

WHAT = {
    GENERATE: "greedy generation",
    TARGETS: "the targets' log-likelihoods",
    CHOICES: "the answer options' log-likelihoods",
}


def of_fields(needs: Iterable[str]) -> frozenset[str]:
    """The passes that write any of these record fields; every pass when none does (the metric may read anything)."""
    needs = set(needs)
    found = frozenset(p for p, fields in FIELDS.items() if needs & fields)
    return found or ALL


def of_metrics(names: Iterable[str]) -> frozenset[str]:
    """The passes the named (registered) metrics need together."""
    from orchestrator.metrics import get

    out: set[str] = set()
    for name in names:
        out |= of_fields(get(name).needs)
    return frozenset(out)


def canonical(passes: Iterable[str]) -> tuple[str, ...]:
    """The passes in their fixed order; an unknown name is a programming error."""
    passes = set(passes)
    unknown = passes - ALL
    if unknown:
        raise ValueError(f"unknown passes {sorted(unknown)}; known: {list(ORDER)}")
    return tuple(p for p in ORDER if p in passes)


def file_suffix(passes: Iterable[str]) -> str:
    """'' for every pass (the name every shard file had before passes existed), else '.generate+targets' etc."""
    got = canonical(passes)
    return "" if set(got) == ALL else "." + "+".join(got)


def parse_suffix(suffix: str) -> frozenset[str] | None:
    """Inverse of `file_suffix` ('' -> every pass); None when `suffix` is not a pass list."""
    if not suffix:
        return ALL
    parts = suffix.split("+")
    if not parts or any(p not in ALL for p in parts) or len(set(parts)) != len(parts):
        return None
    return frozenset(parts)


def describe(passes: Iterable[str]) -> str:
    """Plain words for a set of passes, for messages."""
    words = [WHAT[p] for p in canonical(passes)]
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words) or "nothing"
