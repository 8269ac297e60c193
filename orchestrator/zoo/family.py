"""The zoo's members: GPT-2-shaped character models from ~3K to ~325K parameters (109x).

Shapes and budgets were chosen by measurement on 2 CPU cores (greedy exact
match and target log-probability of each built member on 2- and 3-digit
addition). The training budget grows with size, as it does in real families:
the small members stay under-trained on 3-digit sums (exact match ~0) while the
two largest learn them (~0.4, ~0.8), and the target log-probability improves at
every step up. The whole family trains in about four minutes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from orchestrator.zoo.corpus import DEFAULT_CORPUS, CorpusSpec
from orchestrator.zoo.tokenizer import CHARS, SPECIALS

if TYPE_CHECKING:  # transformers is imported where a model is built: resolving a member must not pay for torch
    from transformers import GPT2Config, GPT2LMHeadModel

VOCAB_SIZE = len(SPECIALS) + len(CHARS)
PAD_ID, EOS_ID = SPECIALS.index("<pad>"), SPECIALS.index("<eos>")


@dataclass(frozen=True)
class MemberSpec:
    """Everything that determines one member's weights (with the corpus spec).

    `batch` is sequences per step at length `n_positions`; a step at a shorter
    length takes proportionally more sequences, so every step sees the same
    number of tokens.
    """

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    steps: int
    batch: int
    lr: float
    n_positions: int = 64
    # Per-step sequence lengths, cycled. Short sequences hold one problem at position 0,
    # where learned absolute positions make it easy to learn; measured on a 30K model,
    # 2-digit addition reached 0.72 exact match in 1500 steps at length 16 and 0.13 at
    # length 64. The long steps teach the later positions that k-shot prompts use.
    lengths: tuple[int, ...] = (16, 16, 16, 64)
    warmup: int = 50
    weight_decay: float = 0.01
    min_lr_ratio: float = 0.1
    seed: int = 0


FAMILY: list[MemberSpec] = [
    MemberSpec("zoo-3k", n_layer=1, n_embd=10, n_head=2, steps=300, batch=32, lr=5e-3, warmup=30),
    MemberSpec("zoo-10k", n_layer=2, n_embd=16, n_head=2, steps=500, batch=32, lr=5e-3),
    MemberSpec("zoo-30k", n_layer=2, n_embd=32, n_head=4, steps=800, batch=32, lr=5e-3),
    MemberSpec("zoo-100k", n_layer=3, n_embd=48, n_head=4, steps=1200, batch=32, lr=5e-3),
    MemberSpec("zoo-300k", n_layer=4, n_embd=80, n_head=4, steps=1600, batch=32, lr=5e-3),
]


def gpt2_config(spec: MemberSpec) -> GPT2Config:
    """The member's architecture; no dropout, so training is a pure function of the seed."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_positions=spec.n_positions,
        n_embd=spec.n_embd,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        n_inner=4 * spec.n_embd,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=EOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        tie_word_embeddings=True,
    )


def param_counts(model: GPT2LMHeadModel) -> tuple[int, int]:
    """(total, non-embedding) parameters; non-embedding excludes token and position tables (Kaplan et al. 2020)."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    return total, total - emb


def spec_hash(spec: MemberSpec, corpus: CorpusSpec = DEFAULT_CORPUS) -> str:
    """Hash of what decides the weights: a changed spec or corpus rebuilds the member.

    It is also the member's identity in shard ids (orchestrator.resolve), so records of a
    retrained member never mix with the old one's, and a member on disk whose card holds
    another hash is refused as stale. Bump "format" when the training code or the tokenizer
    changes what a spec trains into (every built zoo then reads as stale and is rebuilt).
    """
    blob = json.dumps({"member": asdict(spec), "corpus": asdict(corpus), "format": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# Intermediate checkpoints saved while a member trains, as members of their own named
# `{member}-step{N}`: one model read at several points of its training (conf/model/zoo_checkpoints.yaml).
CHECKPOINT_STEPS: dict[str, tuple[int, ...]] = {"zoo-300k": (100, 200, 400, 800)}


def checkpoint_name(name: str, step: int) -> str:
    return f"{name}-step{step}"


def member(name: str) -> MemberSpec:
    """Look a member up by name, naming the known ones when it is missing."""
    for spec in FAMILY:
        if spec.name == name:
            return spec
    raise KeyError(f"no zoo member {name!r}; known: {known_names()}")


def resolve(name: str) -> tuple[MemberSpec, int | None]:
    """A member or one of its checkpoints by name: (spec, checkpoint step or None for the final model)."""
    for spec in FAMILY:
        if spec.name == name:
            return spec, None
        for step in CHECKPOINT_STEPS.get(spec.name, ()):
            if checkpoint_name(spec.name, step) == name:
                return spec, step
    raise KeyError(f"no zoo member or checkpoint {name!r}; known: {known_names()}")


def known_names() -> list[str]:
    out = []
    for spec in FAMILY:
        out += [checkpoint_name(spec.name, s) for s in CHECKPOINT_STEPS.get(spec.name, ())] + [spec.name]
    return out
