"""Run one shard: render its prompts, ask the backend, and build Records.

This is what a worker does for every shard of its model. It knows nothing of
Ray or the store; give it a loaded backend and it returns plain rows.

Only the passes asked for run (`orchestrator.passes`: generation, the
targets' and the options' log-likelihoods); a record's fields of a pass that
did not run stay empty, and `generated` is False where nothing was generated.

The answer is extracted here, once (`prompts.extract_answer`), and stored with
the tokens token edit distance compares: the normalised answer and each
normalised target, each tokenized on its own (`Backend.tokenize`), so the
prompt's trailing whitespace cannot make a correct answer one token off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict

from orchestrator.backends.base import Backend
from orchestrator.metrics.definitions import normalize_answer
from orchestrator.passes import ALL, CHOICES, GENERATE, TARGETS
from orchestrator.plan import Cell, Shard
from orchestrator.prompts import extract_answer, render
from orchestrator.record import Generation, Record, Request, most_likely
from orchestrator.tasks.task import Task


def run_shard(backend: Backend, task: Task, cell: Cell, shard: Shard, passes: Iterable[str] = ALL,
              timings: dict[str, float] | None = None,
              on_progress: Callable[[float], None] | None = None) -> list[dict]:
    """Evaluate examples [shard.start, shard.stop) of `task` under the cell's prompt style.

    `passes` says which inference runs; `timings`, when given, gets the seconds spent generating and scoring;
    `on_progress` is told the fraction of the shard's requests done as the backend's batches finish.
    """
    passes = frozenset(passes)
    prompt = cell.prompt.config
    indices = [ex.idx for ex in task.examples[shard.start : shard.stop]]
    chat = backend.chat if prompt.style == "chat" else None
    requests = render(
        task,
        prompt,
        indices,
        count_tokens=backend.count_tokens,
        max_tokens=backend.max_length,
        chat=chat,
    )
    t0 = time.perf_counter()
    with _Progress(backend, requests, passes, on_progress) as progress:
        generations = _generate(backend, requests) if GENERATE in passes else {}
        progress.phase_over(GENERATE)
        t1 = time.perf_counter()
        scored_targets, scored_choices = _score(backend, requests, TARGETS in passes, CHOICES in passes)
        progress.phase_over("score")
    if timings is not None:
        timings["generate_seconds"] = t1 - t0
        timings["score_seconds"] = time.perf_counter() - t1
    rows = []
    for i, req in enumerate(requests):
        gen = generations.get(i)
        targets = scored_targets.get(i, [])
        choices = scored_choices.get(i, [])
        text = gen.text if gen else ""
        answer = extract_answer(text, task, prompt) if gen else ""
        target_lps = [s.logprob for s in targets]
        best = most_likely(target_lps)
        likely = targets[best] if best >= 0 else None
        target_cut = [bool(s.truncated) for s in targets]
        choice_cut = [bool(s.truncated) for s in choices]
        rec = Record(
            cell_id=cell.id,
            shard_id=shard.id,
            example_idx=req.example_idx,
            prompt=req.prompt,
            n_prompt_tokens=backend.count_tokens(req.prompt),
            n_shots=req.n_shots,
            shots_dropped=req.shots_dropped,
            generated=gen is not None,
            generation=text,
            answer=answer,
            generation_token_ids=list(gen.token_ids) if gen else [],
            answer_token_ids=backend.tokenize(normalize_answer(answer)) if gen else [],
            target_answer_token_ids=[backend.tokenize(normalize_answer(t)) for t in req.targets] if gen else [],
            targets=list(req.targets),
            target_logprobs=target_lps,
            likely_target=best,
            target_token_ids=list(likely.token_ids) if likely else [],
            target_token_logprobs=list(likely.token_logprobs) if likely else [],
            target_is_greedy=bool(likely.is_greedy) if likely else False,
            choices=list(req.choices),
            choice_scores=[float(s) for s in req.choice_scores],
            choice_logprobs=[s.logprob for s in choices],
            choice_n_tokens=[len(s.token_ids) for s in choices],
            truncated=bool(gen and gen.truncated) or any(target_cut) or any(choice_cut),
            target_truncated=target_cut,
            choice_truncated=choice_cut,
        )
        rows.append(asdict(rec))
    return rows


class _Progress:
    """Counts a shard's requests as the backend's batches finish (a backend with an `on_batch` attribute calls it
    with each batch's rows), or else phase by phase, and tells `report` the fraction done."""

    def __init__(self, backend: Backend, requests: list[Request], passes: frozenset[str],
                 report: Callable[[float], None] | None):
        self.backend, self.report = backend, report
        self.generations = sum(r.generate for r in requests) if GENERATE in passes else 0
        pairs = sum(len(r.targets) for r in requests) * (TARGETS in passes)
        pairs += sum(len(r.choices) for r in requests) * (CHOICES in passes)
        self.total = max(1, self.generations + pairs)
        self.done = 0

    def __enter__(self) -> _Progress:
        if self.report is not None and hasattr(self.backend, "on_batch"):
            self.backend.on_batch = self.batch
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(self.backend, "on_batch"):
            self.backend.on_batch = None

    def batch(self, rows: int) -> None:
        self.done += rows
        if self.report is not None:
            self.report(min(1.0, self.done / self.total))

    def phase_over(self, phase: str) -> None:
        """Generation or scoring ended: the count is exact again, whatever the batches said."""
        self.done = self.generations if phase == GENERATE else self.total
        if self.report is not None:
            self.report(min(1.0, self.done / self.total))


def _generate(backend: Backend, requests: list[Request]) -> dict[int, Generation]:
    """Greedy generations, batched per (max_new_tokens, stop) so a shard is one backend call."""
    groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
    for i, r in enumerate(requests):
        if r.generate:
            groups.setdefault((r.max_new_tokens, tuple(r.stop)), []).append(i)
    out: dict[int, Generation] = {}
    for (max_new, stop), idxs in groups.items():
        gens = backend.generate([requests[i].prompt for i in idxs], max_new_tokens=max_new, stop=list(stop))
        out.update(zip(idxs, gens, strict=True))
    return out


def _score(backend: Backend, requests: list[Request], targets_too: bool = True,
           choices_too: bool = True) -> tuple[dict[int, list], dict[int, list]]:
    """Log-likelihood of every target and option asked for, all in one batched call."""
    pairs: list[tuple[str, str]] = []
    owners: list[tuple[int, str]] = []
    for i, r in enumerate(requests):
        for t in r.targets if targets_too else ():
            pairs.append((r.prompt, t))
            owners.append((i, "t"))
        for c in r.choices if choices_too else ():
            pairs.append((r.prompt, c))
            owners.append((i, "c"))
    targets: dict[int, list] = {}
    choices: dict[int, list] = {}
    if not pairs:
        return targets, choices
    for (i, kind), s in zip(owners, backend.loglikelihood(pairs), strict=True):
        (targets if kind == "t" else choices).setdefault(i, []).append(s)
    return targets, choices
