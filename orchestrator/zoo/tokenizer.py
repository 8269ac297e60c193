"""A character-level tokenizer saved as a normal Hugging Face fast tokenizer.

Characters keep arithmetic honest: each digit is one token, so exact match on
an L-digit answer is the product of L per-token successes (the mechanism
Schaeffer et al. 2023 give for "emergent" exact match).
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where the tokenizer is built: the character lists must not pay for transformers
    from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<unk>", "<eos>"]
CHARS = list(string.digits + string.ascii_letters + string.punctuation + " \n")


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the zoo's tokenizer: one token per printable ASCII character, plus pad/unk/eos."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<eos>",
        bos_token="<eos>",
        clean_up_tokenization_spaces=False,
    )
    return fast
