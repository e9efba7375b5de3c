"""OpenAI CLIP BPE tokenizer on the ``tokenizers`` library, read from ``tokenizer.json`` (what
transformers 5 and optimum-intel 2.2 write, preferred) or built from ``vocab.json`` + ``merges.txt``.

Both produce the same ids as transformers' ``CLIPTokenizer``: NFC, whitespace collapsed, lower-cased,
CLIP's pre-tokenisation regex, byte-level BPE with ``</w>`` word ends, ``<|startoftext|>`` ...
``<|endoftext|>``, truncated to ``max_length`` and padded with the pad token.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from pi_axera_sd.engine.contract import TOKENIZER_FILES, TOKENIZER_JSON, TOKENS
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


def _bpe_pair_tokenizer(tokenizer_dir: Path) -> Tokenizer:
    """CLIP's tokenizer built from the ``vocab.json`` + ``merges.txt`` pair."""
    vocab_path, merges_path = (tokenizer_dir / name for name in TOKENIZER_FILES)
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    merges = []
    for line in merges_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#version") or not line.strip():
            continue
        left, right = line.split()
        merges.append((left, right))
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
    tok.add_special_tokens([BOS, EOS])
    return tok


def load_tokenizer(tokenizer_dir: Path) -> tuple[Tokenizer, Path]:
    """The folder's tokenizer without truncation or padding, and the file it came from:
    ``tokenizer.json`` when present (the model's own definition), else the BPE pair."""
    missing = check_tokenizer_files(tokenizer_dir)
    if missing:
        raise ModelError(str(missing[0]), tuple(missing))
    fast = tokenizer_dir / TOKENIZER_JSON
    if not fast.is_file():
        return _bpe_pair_tokenizer(tokenizer_dir), tokenizer_dir / TOKENIZER_FILES[0]
    try:
        tok = Tokenizer.from_file(str(fast))
    except Exception as exc:  # the Rust library's own parse errors
        raise ModelError(f"{fast}: not a tokenizer file the tokenizers library reads ({exc})") from exc
    tok.no_truncation()
    tok.no_padding()
    return tok, fast


def write_tokenizer_json(tokenizer_dir: Path) -> Path:
    """Write ``tokenizer.json`` from the folder's BPE pair (an export that lacks it)."""
    out = tokenizer_dir / TOKENIZER_JSON
    _bpe_pair_tokenizer(tokenizer_dir).save(str(out))
    return out


def complete_tokenizer(folder: Path) -> None:
    """Both forms in an export's tokenizer folder: ``tokenizer.json`` (today's tools read only it)
    and the ``vocab.json`` + ``merges.txt`` pair (AXERA's scripts and older tools read that)."""
    fast = folder / TOKENIZER_JSON
    vocab_path, merges_path = (folder / name for name in TOKENIZER_FILES)
    has_pair = vocab_path.is_file() and merges_path.is_file()
    if fast.is_file() and not has_pair:
        model = json.loads(fast.read_text(encoding="utf-8"))["model"]
        vocab_path.write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    elif has_pair and not fast.is_file():
        write_tokenizer_json(folder)


class ClipTokenizer:
    """Text -> fixed-length CLIP token ids."""

    def __init__(self, tokenizer_dir: str | Path, max_length: int = TOKENS) -> None:
        tokenizer_dir = Path(tokenizer_dir)
        tok, self.source = load_tokenizer(tokenizer_dir)
        ids = {special: tok.token_to_id(special) for special in (BOS, EOS)}
        for special, found in ids.items():
            if found is None:
                raise ModelError(f"{self.source}: special token {special} missing from the vocabulary")
        self.bos_id, self.eos_id = ids[BOS], ids[EOS]
        pad = _pad_token(tokenizer_dir)
        pad_id = tok.token_to_id(pad)
        self.pad_id = self.eos_id if pad_id is None else pad_id
        comma = tok.token_to_id(",</w>")
        self.comma_id: int | None = comma  # where A1111's chunking may break a long prompt
        # Pieces of a weighted prompt are tokenised bare: no specials, no truncation, no padding.
        self._bare = Tokenizer.from_str(tok.to_str())
        self._bare.post_processor = None
        # BOS ... EOS whatever post-processor the file names (transformers writes RobertaProcessing)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", special_tokens=[(BOS, self.bos_id), (EOS, self.eos_id)]
        )
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

    def piece_ids(self, texts: list[str], max_tokens: int) -> list[list[int]]:
        """Ids of each text without BOS/EOS, padding or truncation: the pieces of a weighted prompt.
        Only the first ``max_tokens * 256`` characters of each are read (see ``_CHARS_PER_TOKEN``)."""
        limit = max_tokens * _CHARS_PER_TOKEN
        encoded = self._bare.encode_batch([valid_text(t[:limit]) for t in texts], add_special_tokens=False)
        return [list(e.ids) for e in encoded]

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Ids of several texts, shape ``[len(texts), max_length]`` int64."""
        encoded = self._tok.encode_batch([self._prepared(text) for text in texts])
        return np.asarray([e.ids for e in encoded], dtype=np.int64).reshape(len(texts), self.max_length)
