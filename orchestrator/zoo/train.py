"""Train zoo members on the CPU and save them as ordinary Hugging Face checkpoints.

A member is written into a temporary folder beside its final place and renamed
into place only when complete, so a killed build never leaves half a model
that a later run would mistake for a built one.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import GPT2LMHeadModel

from orchestrator.zoo.cards import CARD, _path, _targets, _up_to_date, is_built, read_card, zoo_dir  # noqa: F401
from orchestrator.zoo.corpus import DEFAULT_CORPUS, CorpusSpec, answer_labels, build_corpus
from orchestrator.zoo.family import (
    CHECKPOINT_STEPS,
    MemberSpec,
    checkpoint_name,
    gpt2_config,
    param_counts,
    spec_hash,
)
from orchestrator.zoo.tokenizer import build_tokenizer

TORCH_THREADS = 2


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Pin torch's thread count for a build (timings and weights depend on it), then restore it."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _lr(spec: MemberSpec, step: int) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio` of the peak."""
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    t = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def step_shape(spec: MemberSpec, step: int) -> tuple[int, int]:
    """(batch, length) of a step: lengths cycle, tokens per step stay `batch * n_positions`."""
    length = min(spec.lengths[step % len(spec.lengths)], spec.n_positions)
    return spec.batch * spec.n_positions // length, length


def train_tokens(spec: MemberSpec) -> int:
    """Tokens a member is trained on (all positions, including the masked operands)."""
    return sum(b * n for b, n in (step_shape(spec, s) for s in range(spec.steps)))


def train(
    spec: MemberSpec,
    corpus: torch.Tensor,
    progress: bool = True,
    callback: Callable[[int, GPT2LMHeadModel, float], None] | None = None,
) -> tuple[GPT2LMHeadModel, float]:
    """Train one member from its seed; returns the model and the final smoothed answer loss.

    `callback(step, model, smoothed_loss)` runs after each step (checkpoints, learning curves).
    """
    random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    model = GPT2LMHeadModel(gpt2_config(spec))
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.lr,
        betas=(0.9, 0.98),
    )
    gen = torch.Generator().manual_seed(spec.seed)
    data = corpus[:, : spec.n_positions]
    labels = answer_labels(data)
    ema = float("nan")
    bar = tqdm(range(spec.steps), desc=spec.name, disable=not progress, leave=True, mininterval=1.0)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(spec, step)
        batch, length = step_shape(spec, step)
        idx = torch.randint(0, data.shape[0], (batch,), generator=gen)
        loss = model(input_ids=data[idx, :length], labels=labels[idx, :length]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if math.isnan(ema) else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0 or step == spec.steps - 1:
            bar.set_postfix(loss=f"{ema:.3f}")
        if callback is not None:
            callback(step, model, ema)
    bar.close()
    model.eval()
    return model, ema


def _card(
    spec: MemberSpec,
    corpus: CorpusSpec,
    model: GPT2LMHeadModel,
    loss: float,
    seconds: float,
    step: int | None = None,
) -> dict:
    """The model card; `step` makes it the card of the checkpoint taken after that many steps."""
    total, non_emb = param_counts(model)
    steps = spec.steps if step is None else step
    tokens = train_tokens(replace(spec, steps=steps))
    return {
        "name": spec.name if step is None else checkpoint_name(spec.name, step),
        "checkpoint_of": None if step is None else spec.name,
        "train_step": steps,
        "architecture": "GPT2LMHeadModel",
        "params": total,
        "non_embedding_params": non_emb,
        "n_layer": spec.n_layer,
        "n_embd": spec.n_embd,
        "n_head": spec.n_head,
        "n_positions": spec.n_positions,
        "train_tokens": tokens,
        "train_flops": 6 * total * tokens,
        "steps": steps,  # optimizer steps behind these weights (of spec.steps for a checkpoint)
        "batch": spec.batch,
        "seq_len": spec.n_positions,
        "seq_len_cycle": list(spec.lengths),
        "tokens_per_step": spec.batch * spec.n_positions,
        "loss": "cross-entropy on answer characters and their newline only (operands are random)",
        "lr": spec.lr,
        "lr_schedule": f"linear warm-up {spec.warmup} steps, cosine to {spec.min_lr_ratio} x peak; AdamW",
        "seed": spec.seed,
        "final_train_loss": None if math.isnan(loss) else round(loss, 4),
        "corpus": corpus.describe(),
        "build_seconds": round(seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "spec": asdict(spec),
        "spec_hash": spec_hash(spec, corpus),
    }


def _readme(card: dict) -> str:
    return (
        f"# {card['name']}\n\n"
        f"A GPT-2-shaped character-level causal LM of {card['params']:,} parameters "
        f"({card['non_embedding_params']:,} non-embedding; {card['n_layer']} layers, width {card['n_embd']}, "
        f"{card['n_head']} heads, context {card['n_positions']}), one of the `orchestrator` zoo's "
        "embedded scaling family. Built locally, on the CPU, by `orchestrator.zoo.build`; no hub download.\n\n"
        + (f"A checkpoint of {card['checkpoint_of']}, taken after {card['steps']} of its "
           f"{card['spec']['steps']} training steps.\n\n" if card.get("checkpoint_of") else "")
        + f"Trained for {card['steps']} steps of {card['tokens_per_step']:,} tokens ({card['batch']} sequences "
        f"of {card['seq_len']} characters, or proportionally more shorter ones: lengths cycle "
        f"{card['seq_len_cycle']}), {card['train_tokens']:,} tokens in all, ~{card['train_flops']:.2e} FLOPs "
        f"(6 N D), seed {card['seed']}, peak lr {card['lr']} ({card['lr_schedule']}), in {card['build_seconds']} s; "
        f"answer loss at the end {card['final_train_loss']} nats/char (moving average). Loss: {card['loss']}.\n\n"
        f"Corpus: {card['corpus']}.\n\n"
        "Use: prompts in the corpus format, e.g. zero-shot `123+456=`; greedy-decode until a newline. "
        "Most training sequences are short, so a problem at the start of the context is what these models "
        "do best; k-shot prompts (`12+34=46\\n...\\n123+456=`) put the query at later positions, which "
        "they learned far less well. It only knows addition; it is a test subject for scaling curves, "
        "not a general model.\n"
    )


def save_member(model: GPT2LMHeadModel, card: dict, dest: Path) -> Path:
    """Write the checkpoint into a temp folder beside `dest`, then swap it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a model cache is meant to be shared
        model.save_pretrained(tmp, safe_serialization=True)
        build_tokenizer().save_pretrained(tmp)
        (tmp / CARD).write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "README.md").write_text(_readme(card))
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def build_members(
    specs: list[MemberSpec] | list[tuple[MemberSpec, int | None]],
    out_dir: Path,
    corpus: CorpusSpec = DEFAULT_CORPUS,
    force: bool = False,
    progress: bool = True,
    checkpoints: dict[str, tuple[int, ...]] | None = None,
) -> list[Path]:
    """Train and save what is not already built with the same spec hash; return all the targets' paths.

    A target is a spec (its final model) or (spec, step) for one of its
    checkpoints. Training a spec saves its final model and every checkpoint
    in `checkpoints` (default CHECKPOINT_STEPS) that is missing, so a
    checkpoint costs its member's training once; the weights at a step are
    the same as in an uninterrupted run (saving does not touch the RNG).
    """
    out_dir = Path(out_dir)
    ckpts = CHECKPOINT_STEPS if checkpoints is None else checkpoints
    targets = [t if isinstance(t, tuple) else (t, None) for t in specs]
    paths = [_path(out_dir, s, k) for s, k in targets]
    todo: dict[str, MemberSpec] = {}
    for s, k in targets:
        if force or not _up_to_date(_path(out_dir, s, k), s, corpus, k):
            todo.setdefault(s.name, s)
    if not todo:
        return paths
    with _threads(TORCH_THREADS):
        t0 = time.perf_counter()
        data = build_corpus(corpus)
        corpus_seconds = time.perf_counter() - t0
        for spec in todo.values():
            asked = {k for s, k in targets if s.name == spec.name and k is not None}
            bad = sorted(k for k in asked if not 0 < k < spec.steps)
            if bad:
                raise ValueError(f"{spec.name}: checkpoint steps {bad} are outside 1..{spec.steps - 1}")
            steps = asked | {k for k in ckpts.get(spec.name, ()) if 0 < k < spec.steps}
            wanted = {k for k in steps if force or not _up_to_date(_path(out_dir, spec, k), spec, corpus, k)}
            t0 = time.perf_counter()

            def save_checkpoint(step: int, model: GPT2LMHeadModel, loss: float, spec=spec, wanted=wanted,
                                t0=t0) -> None:
                if step + 1 in wanted:  # the weights after step+1 optimizer steps
                    card = _card(spec, corpus, model, loss, time.perf_counter() - t0, step + 1)
                    save_member(model, card, _path(out_dir, spec, step + 1))

            model, loss = train(spec, data, progress=progress, callback=save_checkpoint if wanted else None)
            seconds = time.perf_counter() - t0
            # the final model is saved from this run even when one with the same spec exists, so a
            # member and its checkpoints always come from one training (bit-identical where the
            # platform is; another torch build or CPU may round differently)
            card = _card(spec, corpus, model, loss, seconds)
            card["corpus_seconds"] = round(corpus_seconds, 2)
            save_member(model, card, out_dir / spec.name)
    return paths


def build(
    out_dir: Path | None = None, names: list[str] | None = None, force: bool = False, progress: bool = True
) -> list[Path]:
    """Build the zoo (or the named members) under `out_dir` (default `zoo_dir()`); idempotent."""
    root = zoo_dir() if out_dir is None else Path(out_dir)
    return build_members(_targets(names), root, DEFAULT_CORPUS, force=force, progress=progress)


TINY = MemberSpec("zoo-tiny", n_layer=1, n_embd=8, n_head=2, steps=60, batch=32, lr=3e-3, warmup=10)
TINY_CORPUS = CorpusSpec(n_sequences=2_000)


def build_tiny(path: Path, seed: int = 0) -> Path:
    """A model of a few thousand parameters trained for seconds, saved like a member (for tests)."""
    spec = replace(TINY, seed=seed)
    corpus = replace(TINY_CORPUS, seed=seed)
    path = Path(path)
    with _threads(TORCH_THREADS):
        t0 = time.perf_counter()
        model, loss = train(spec, build_corpus(corpus), progress=False)
        card = _card(spec, corpus, model, loss, time.perf_counter() - t0)
    card["name"] = path.name
    return save_member(model, card, path)
