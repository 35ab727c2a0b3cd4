"""T5's tokenizer, offline: the 32,100-token SentencePiece vocabulary of Google's T5 v1.1, which the T5-XXL text
encoder of SD 3 / 3.5 and FLUX.1 was trained with.

A single-file checkpoint holds the T5 encoder's weights but not its tokenizer, and diffusers fetches that from
the hub. Opendream ships the fast tokenizer's `tokenizer.json` (engine/models/data/t5, Apache-2.0, notice kept):
`T5TokenizerFast` needs nothing else, and neither `sentencepiece` nor `protobuf` is installed for it.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path
from typing import Any

TOKENIZER_FILE = Path(__file__).parent / "data" / "t5" / "tokenizer.json.gz"
VOCAB_SIZE = 32100  # 32,000 SentencePiece pieces + 100 sentinel tokens (<extra_id_0> ... <extra_id_99>)
MAX_LENGTH = 512  # T5 v1.1's model_max_length; FLUX refuses a longer max_sequence_length


@cache
def _tokenizer_json() -> str:
    return gzip.decompress(TOKENIZER_FILE.read_bytes()).decode("utf-8")


def t5_tokenizer() -> Any:
    """A transformers T5TokenizerFast with T5 v1.1's vocabulary and special tokens, as the FLUX.1 and SD 3
    repositories' `tokenizer_2` / `tokenizer_3` folders hold it."""
    from tokenizers import Tokenizer
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]  # transformers 5: a lazy alias of T5Tokenizer

    tokenizer = T5TokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=100,
        model_max_length=MAX_LENGTH,
    )
    if len(tokenizer) != VOCAB_SIZE:  # the shipped file is damaged
        raise RuntimeError(f"{TOKENIZER_FILE} gives {len(tokenizer)} tokens, not T5's {VOCAB_SIZE}")
    return tokenizer
