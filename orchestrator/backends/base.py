"""The Backend interface, and the text/token rules every backend shares.

A backend turns prompts into greedy generations and (context, continuation)
pairs into log-likelihoods. The rules that decide *what* is measured (where a
generation is cut, which tokens belong to a continuation) live here as pure
functions, so the transformers and vLLM backends cannot drift apart. Nothing
here imports torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from orchestrator.record import Generation, Scored

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """A model cannot be loaded or used as configured; the message says how to fix it."""


@runtime_checkable
class Backend(Protocol):
    """One loaded model: greedy generation and log-likelihood scoring, in batches."""

    name: str
    max_length: int  # context length in tokens (prompt + generated)

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes as a prompt (special tokens the tokenizer adds, e.g. BOS, included)."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as a prompt (same rule as `count_tokens`)."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` on its own, without special tokens: how answers and targets are compared."""
        ...

    def generate(self, prompts: list[str], max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generation]:
        """Greedy continuation of each prompt, cut at the first stop string; same order as `prompts`."""
        ...

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[Scored]:
        """log p(continuation | context) for each (context, continuation) pair; same order."""
        ...

    def chat(self, text: str) -> str:
        """`text` as one user message in the tokenizer's chat template, ready for the assistant's reply."""
        ...

    def close(self) -> None:
        """Release the model's memory."""
        ...


class TokenizerMixin:
    """Token counting, decoding and chat formatting shared by backends that hold a HF tokenizer."""

    tokenizer: Any

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def chat(self, text: str) -> str:
        return apply_chat_template(self.tokenizer, text)


# --- generation -----------------------------------------------------------------------------------------------


def cut_at_stop(text: str, stop: Iterable[str]) -> tuple[str, bool]:
    """`text` up to (not including) the earliest occurrence of any stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def covering_prefix(ids: Sequence[int], text: str, decode: Callable[[list[int]], str]) -> list[int]:
    """The shortest prefix of `ids` whose decoding is at least as long as `text`.

    This is the token boundary of a generation cut at a stop string: the tokens
    the model produced to write `text`. When the cut falls between tokens (always
    for a character-level tokenizer) they decode to exactly `text`; when a stop
    string begins inside a token, that last token is kept and decodes a little
    past the cut. Re-encoding the text instead could give ids the model never
    produced.
    """
    if not text:
        return []
    for j in range(1, len(ids) + 1):
        if len(decode(list(ids[:j]))) >= len(text):
            return list(ids[:j])
    return list(ids)


def finish_generation(
    ids: Sequence[int],
    stop: Sequence[str],
    eos_ids: Iterable[int],
    decode: Callable[[list[int]], str],
    truncated: bool = False,
) -> Generation:
    """Turn the raw generated ids of one prompt into a Generation.

    Ids end at the first end-of-sequence token (excluded); the text is cut at the
    first stop string (excluded); token_ids are the generated ids up to the cut
    (`covering_prefix`). `truncated` says whether the prompt was cut to fit (`truncate_prompt`).
    """
    eos = set(eos_ids)
    kept = list(ids)
    for j, t in enumerate(kept):
        if t in eos:
            kept = kept[:j]
            break
    text, was_cut = cut_at_stop(decode(kept), stop)
    if was_cut:
        kept = covering_prefix(kept, text, decode)
    return Generation(text=text, token_ids=tuple(int(t) for t in kept), truncated=truncated)


def truncate_prompt(ids: list[int], limit: int) -> tuple[list[int], bool]:
    """The last `limit` ids of a prompt (its end is what the model continues), and whether any were cut.

    Prompts drop exemplars to fit first (`prompts.render`); a query that still does
    not fit loses its beginning here, and the record says so (`Record.truncated`).
    """
    if limit < 1:
        raise BackendError(
            f"no room for a prompt: the context length leaves {limit} tokens after max_new_tokens; "
            "lower the prompt's max_new_tokens or raise backend.max_length"
        )
    if len(ids) > limit:
        log.warning("prompt of %d tokens exceeds the %d available; keeping its last %d tokens", len(ids), limit, limit)
        return ids[-limit:], True
    return ids, False


# --- log-likelihood -------------------------------------------------------------------------------------------


def move_trailing_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace onto the continuation, as lm-evaluation-harness does.

    BPE vocabularies attach a space to the word after it (" Paris"), so a context
    ending in a space would force an unnatural tokenization of the continuation.
    """
    stripped = context.rstrip()
    n = len(context) - len(stripped)
    return (stripped, context[len(stripped) :] + continuation) if n else (context, continuation)


def pair_token_ids(
    context: str,
    continuation: str,
    encode_context: Callable[[str], list[int]],
    encode_continuation: Callable[[str], list[int]],
    empty_context_id: int,
) -> tuple[list[int], list[int]]:
    """Context ids and continuation ids, tokenized separately so the continuation's tokens are well defined.

    For log-likelihood only: these continuation ids depend on the context's
    trailing whitespace, so token edit distance compares standalone tokenizations
    instead (`Backend.tokenize`, see `orchestrator.record`).

    The context is encoded as a prompt (with the tokenizer's special tokens, as in
    generation, so a target scored here and a generation see the same prefix);
    the continuation without special tokens. An empty context becomes one
    BOS/EOS token, so the first continuation token has something to be predicted
    from.
    """
    context, continuation = move_trailing_whitespace(context, continuation)
    ctx = encode_context(context) if context else []
    if not ctx:
        ctx = [empty_context_id]
    return ctx, encode_continuation(continuation)


def fit_for_scoring(ctx: list[int], cont: list[int], window: int) -> tuple[list[int], bool] | None:
    """The last `window` ids of context + continuation and whether the context lost tokens; None if it cannot fit.

    The model scores every token of the window but the first (it has nothing to
    be predicted from), so a continuation fits when it has at most `window - 1`
    tokens. What `window` is depends on the engine, not on this rule:
    transformers reads `max_length` tokens and scores the next one (window =
    max_length + 1); vLLM must also generate a token after its prompt (window =
    max_length - 1). An unscorable continuation is recorded NaN (`unscorable_scored`).
    """
    if len(cont) > window - 1:
        return None
    seq = ctx + cont
    return seq[-window:], len(seq) > window


def merge_eos_ids(generation_eos: int | Iterable[int] | None, tokenizer_eos: int | None,
                  vocab_size: int | None) -> list[int]:
    """End-of-sequence ids: the generation config's (chat models list several) and the tokenizer's, in the vocab.

    Both backends end a generation at the same ids; ids past the output
    vocabulary (some configs name ids the head cannot produce) are dropped.
    """
    ids: set[int] = set()
    if isinstance(generation_eos, int):
        ids.add(generation_eos)
    elif generation_eos is not None:
        ids.update(int(i) for i in generation_eos)
    if tokenizer_eos is not None:
        ids.add(int(tokenizer_eos))
    return sorted(i for i in ids if i >= 0 and (vocab_size is None or i < vocab_size))


# --- chat ------------------------------------------------------------------------------------------------------


def apply_chat_template(tokenizer: Any, text: str) -> str:
    """One user message rendered by the tokenizer's own chat template, ending where the assistant speaks."""
    if not getattr(tokenizer, "chat_template", None):
        raise BackendError(
            f"the tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template, so the 'chat' prompt "
            "style cannot be used with this model: choose another prompt style or an instruction-tuned model"
        )
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def unscorable_scored() -> Scored:
    """A continuation longer than the model's context: its log-probability is undefined (NaN)."""
    return Scored(logprob=float("nan"), token_logprobs=(), token_ids=(), is_greedy=False, truncated=True)


def empty_scored() -> Scored:
    """The score of an empty continuation: probability one, trivially greedy."""
    return Scored(logprob=0.0, token_logprobs=(), token_ids=(), is_greedy=True)
