"""Qwen3-TTS frontend: the checkpoint's own byte-level BPE tokenizer, on the control plane.

Only the tokenizer files of a checkpoint are read (``tokenizer.json`` when it
has one, else ``vocab.json`` + ``merges.txt`` + ``tokenizer_config.json``,
built the way transformers builds Qwen2's fast tokenizer), through the
``tokenizers`` library: the producer never imports torch or loads weights.

Ids are those of the text alone; the engine wraps them in the chat template
(``<|im_start|>assistant\\n`` ... ``<|im_end|>\\n<|im_start|>assistant\\n``)
whose pieces are split off before BPE, so the ids are the same as the
model's own tokenisation of the whole prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.errors import BadInputError
from shared.frontend import Frontend
from shared.frontend.lexicon import Lexicon

#: Qwen2's pre-tokenizer pattern (transformers' Qwen2Converter).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def load_tokenizer(directory: Path) -> Any:
    """The checkpoint's text tokenizer as a ``tokenizers.Tokenizer``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    fast = directory / "tokenizer.json"
    if fast.is_file():
        return Tokenizer.from_file(str(fast))
    vocab_file, merges_file = directory / "vocab.json", directory / "merges.txt"
    if not vocab_file.is_file() or not merges_file.is_file():
        raise BadInputError(f"{directory} has no tokenizer.json and no vocab.json + merges.txt")
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    merges: list[tuple[str, str]] = []
    for line in merges_file.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#version"):
            left, _, right = line.partition(" ")
            merges.append((left, right))
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    config_file = directory / "tokenizer_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        added = sorted((config.get("added_tokens_decoder") or {}).items(), key=lambda kv: int(kv[0]))
        tokenizer.add_special_tokens(
            [
                AddedToken(
                    str(entry["content"]),
                    single_word=bool(entry.get("single_word", False)),
                    lstrip=bool(entry.get("lstrip", False)),
                    rstrip=bool(entry.get("rstrip", False)),
                    normalized=bool(entry.get("normalized", False)),
                    special=True,
                )
                for _index, entry in added
            ]
        )
    return tokenizer


class Qwen3Frontend(Frontend):
    """Normalise, split into sentences, and tokenise with the checkpoint's BPE."""

    name = "qwen3"

    def __init__(self, config: dict[str, Any], *, max_tokens: int = 512, lexicon: Lexicon | None = None) -> None:
        directory = config.get("tokenizer_dir")
        if not directory:
            raise BadInputError("the qwen3 frontend needs the checkpoint's tokenizer folder (tokenizer_dir)")
        super().__init__(max_tokens=max_tokens, lexicon=lexicon, language=str(config.get("language") or "en"))
        self._tokenizer = load_tokenizer(Path(directory))

    def ids(self, text: str) -> list[int]:
        """Token ids of already-normalised text, without the chat template's special tokens."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)
