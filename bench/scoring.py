"""Log-likelihood scoring speed: the shared-prefix cache path against one full forward pass per pair.

Two workloads, as a shard sends them to `TransformersBackend.loglikelihood` in one call:
  addition: 200 '123+456=' prompts x (1 target + 4 options), 1,000 pairs;
  3-shot MC: 200 prompts of three solved examples and a question x 4 options, 800 pairs.
Two models: the zoo's zoo-300k (~/.cache/orchestrator/zoo, `orchestrator zoo build`) and a
random-weight GPT-2 of ~20M parameters with the zoo's tokenizer (built in a temp folder).

    python bench/scoring.py [--repeats 5] [--threads 1] [--batch-size 32] [--models zoo-300k,gpt2-20m]

Each repeat times both paths back to back (alternating which goes first), so load from
other processes hits both; prints median and min-max seconds and the speed-up of the
medians, and checks the two paths agree (max |Δ logprob| per token, same greediness).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from orchestrator.backends import load_backend
from orchestrator.config import BackendConfig, ModelFamily, ModelSize
from orchestrator.zoo import zoo_dir
from orchestrator.zoo.tokenizer import build_tokenizer

Pairs = list[tuple[str, str]]


def addition(n: int = 200, seed: int = 0) -> Pairs:
    """n three-digit additions, each scored on its answer and 4 wrong answers."""
    rng = random.Random(seed)
    pairs: Pairs = []
    for _ in range(n):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        prompt = f"{a}+{b}="
        pairs.append((prompt, str(a + b)))
        pairs.extend((prompt, str(a + b + d)) for d in (-100, -10, 1, 10))
    return pairs


def mc_three_shot(n: int = 200, seed: int = 1) -> Pairs:
    """n prompts of 3 solved two-digit additions and a question, each with 4 options (fits 64 characters)."""
    rng = random.Random(seed)
    pairs: Pairs = []
    for _ in range(n):
        shots = []
        for _ in range(3):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            shots.append(f"{a}+{b}={a + b}\n")
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = "".join(shots) + f"{a}+{b}="
        options = [a + b, a + b + 1, a + b - 10, a + b + 11]
        rng.shuffle(options)
        pairs.extend((prompt, str(o)) for o in options)
    return pairs


def random_gpt2(folder: Path) -> Path:
    """A ~20M-parameter GPT-2 (6 layers x 512) with random weights and the zoo's tokenizer, in safetensors."""
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=512, n_layer=6, n_head=8, n_positions=128, vocab_size=len(tok),
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def time_once(backend, pairs: Pairs, prefix: bool) -> tuple[float, list]:
    backend.prefix_cache = prefix
    start = time.perf_counter()
    scored = backend.loglikelihood(pairs)
    return time.perf_counter() - start, scored


def compare(old: list, new: list) -> tuple[float, bool]:
    worst = 0.0
    same = True
    for o, n in zip(old, new, strict=True):
        same &= o.is_greedy == n.is_greedy and o.token_ids == n.token_ids and o.truncated == n.truncated
        worst = max([worst, *(abs(a - b) for a, b in zip(o.token_logprobs, n.token_logprobs, strict=True))])
    return worst, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", default="zoo-300k,gpt2-20m")
    args = parser.parse_args()
    workloads = {"addition 200x5": addition(), "3-shot MC 200x4": mc_three_shot()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"zoo-300k": zoo_dir() / "zoo-300k", "gpt2-20m": None}
        for name in args.models.split(","):
            path = paths[name] or random_gpt2(Path(tmp) / name)
            backend = load_backend(ModelSize(path=str(path), params=1), ModelFamily(family=name),
                                   BackendConfig(batch_size=args.batch_size), threads=args.threads)
            n_params = sum(p.numel() for p in backend.model.parameters())
            for label, pairs in workloads.items():
                time_once(backend, pairs[:50], True)  # warm-up
                time_once(backend, pairs[:50], False)
                times: dict[bool, list[float]] = {True: [], False: []}
                results: dict[bool, list] = {}
                for r in range(args.repeats):
                    for prefix in ((True, False) if r % 2 else (False, True)):
                        seconds, results[prefix] = time_once(backend, pairs, prefix)
                        times[prefix].append(seconds)
                worst, same = compare(results[False], results[True])
                old, new = statistics.median(times[False]), statistics.median(times[True])
                print(f"{name} ({n_params / 1e6:.2f}M) | {label} | full pass {old:.3f} s "
                      f"({min(times[False]):.3f}-{max(times[False]):.3f}) | prefix cache {new:.3f} s "
                      f"({min(times[True]):.3f}-{max(times[True]):.3f}) | x{old / new:.2f} | "
                      f"max |Δ| {worst:.1e}, same greedy/ids: {same}", flush=True)
            backend.close()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
