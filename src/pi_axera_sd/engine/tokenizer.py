"""OpenAI CLIP BPE tokenizer built on the ``tokenizers`` library from ``vocab.json`` + ``merges.txt``.

Produces the same ids as transformers' ``CLIPTokenizer``: NFC, whitespace collapsed, lower-cased,
CLIP's pre-tokenisation regex, byte-level BPE with ``</w>`` word ends, ``<|startoftext|>`` ...
``<|endoftext|>``, truncated to ``max_length`` and padded with the pad token.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from pi_axera_sd.engine.contract import TOKENIZER_FILES, TOKENS
from pi_axera_sd.engine.contract_checks import check_tokenizer_files
from pi_axera_sd.errors import ModelError
from pi_axera_sd.safetext import valid_text

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# CLIP's word pattern (from OpenAI's simple_tokenizer): specials, contractions, letters, single
# digits, and runs of other non-space characters.
_CLIP_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)

# Characters of a text looked at: far more than max_length tokens ever span (the longest vocabulary
# entry is a few dozen bytes), so only the time spent on text past the cut is saved (a 1 MB prompt
# took 2 s to tokenise, only to be truncated).
_CHARS_PER_TOKEN = 256


def _pad_token(tokenizer_dir: Path) -> str:
    """The pad token named by the tokenizer's config (SD1.5: ``<|endoftext|>``)."""
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = tokenizer_dir / name
        if path.is_file():
            pad = json.loads(path.read_text()).get("pad_token")
            if isinstance(pad, dict):
                pad = pad.get("content")
            if isinstance(pad, str):
                return pad
    return EOS


class ClipTokenizer:
    """Text -> fixed-length CLIP token ids."""

    def __init__(self, tokenizer_dir: str | Path, max_length: int = TOKENS) -> None:
        tokenizer_dir = Path(tokenizer_dir)
        missing = check_tokenizer_files(tokenizer_dir)
        if missing:
            raise ModelError(str(missing[0]), tuple(missing))
        vocab_path, merges_path = (tokenizer_dir / name for name in TOKENIZER_FILES)
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        merges = []
        for line in merges_path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#version") or not line.strip():
                continue
            left, right = line.split()
            merges.append((left, right))
        for special in (BOS, EOS):
            if special not in vocab:
                raise ModelError(f"{vocab_path}: special token {special} missing from the vocabulary")

        tok = Tokenizer(
            models.BPE(vocab=vocab, merges=merges, unk_token=EOS, end_of_word_suffix="</w>", fuse_unk=False)
        )
        tok.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_CLIP_PATTERN), behavior="removed", invert=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        self.bos_id = vocab[BOS]
        self.eos_id = vocab[EOS]
        pad = _pad_token(tokenizer_dir)
        self.pad_id = vocab.get(pad, self.eos_id)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", special_tokens=[(BOS, self.bos_id), (EOS, self.eos_id)]
        )
        tok.add_special_tokens([BOS, EOS])
        tok.enable_truncation(max_length)
        tok.enable_padding(length=max_length, pad_id=self.pad_id, pad_token=pad)
        self._tok = tok
        self.max_length = max_length

    def _prepared(self, text: str) -> str:
        return valid_text(text[: self.max_length * _CHARS_PER_TOKEN])

    def encode(self, text: str) -> np.ndarray:
        """Ids of one text, shape ``[max_length]`` int64 (truncated keeps BOS ... EOS). Any ``str``
        is accepted: lone surrogates (which the Rust tokenizer refuses) are read as U+FFFD."""
        return np.asarray(self._tok.encode(self._prepared(text)).ids, dtype=np.int64)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Ids of several texts, shape ``[len(texts), max_length]`` int64."""
        encoded = self._tok.encode_batch([self._prepared(text) for text in texts])
        return np.asarray([e.ids for e in encoded], dtype=np.int64).reshape(len(texts), self.max_length)
