"""CLIP's tokenizer, offline: the 49,408-token vocabulary every Stable Diffusion text encoder was trained with.

A single-file checkpoint holds the text encoders' weights but not their tokenizers, and diffusers fetches those
from the hub. Opendream ships CLIP's own byte-pair file (engine/models/data, MIT, notice kept) and builds the
`vocab.json` / `merges.txt` pair from it exactly as CLIP's `simple_tokenizer.py` does; SD 1.x (CLIP ViT-L),
SD 2.x (OpenCLIP ViT-H) and SDXL (both, plus OpenCLIP ViT-bigG) all use this vocabulary. They differ only in the
padding token.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path
from typing import Any

from engine.models.tiny import _bytes_to_unicode

BPE_FILE = Path(__file__).parent / "data" / "clip_bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77


@cache
def clip_vocabulary() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """(token -> id, merges in rank order), as CLIP's SimpleTokenizer builds them."""
    lines = gzip.decompress(BPE_FILE.read_bytes()).decode("utf-8").split("\n")
    merges = tuple(tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1])
    symbols = _bytes_to_unicode()
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols), *("".join(pair) for pair in merges), BOS, EOS]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:  # the shipped file is damaged
        raise RuntimeError(f"{BPE_FILE} gives {len(vocab)} tokens, not CLIP's {VOCAB_SIZE}")
    return vocab, merges  # type: ignore[return-value]


def clip_tokenizer(pad_token: str = EOS) -> Any:
    """A transformers CLIPTokenizer with CLIP's vocabulary (pad `<|endoftext|>` for CLIP ViT-L, `!` for the
    OpenCLIP encoders of SD 2.x and SDXL)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocabulary()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        bos_token=BOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=pad_token,
        model_max_length=MAX_LENGTH,
    )
