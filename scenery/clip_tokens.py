"""CLIP's text tokenizer without torch: open_clip's cleaning and word split, HF ``tokenizers`` BPE.

open_clip's ``SimpleTokenizer`` returns torch tensors (its module imports torch), and a web
process on the ONNX runtime must not load torch for one query. This builds the same
tokenization from the same vocabulary: the text is cleaned as open_clip cleans it (ftfy,
HTML entities, whitespace, lower case), split into words by open_clip's own pattern, and each
word byte-encoded and merged by the ``tokenizers`` library's BPE with CLIP's ``</w>``
end-of-word suffix. The vocabulary is written once, at export, as ``tokenizer.json``;
``tests/test_clip_tokens.py`` checks the ids equal open_clip's on hostile text.
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Sequence
from pathlib import Path

import ftfy
import numpy as np
import regex

SOT = "<start_of_text>"
EOT = "<end_of_text>"
# open_clip's word pattern (tokenizer.SimpleTokenizer), special tokens first.
WORDS = regex.compile(
    f"{SOT}|{EOT}" + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
MERGES = 49152 - 256 - 2  # merges open_clip reads from its vocabulary file


def clean(text: str) -> str:
    """open_clip's default cleaning: fix mojibake, unescape HTML twice, collapse whitespace,
    lower-case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes that CLIP's (GPT-2's) byte-level BPE uses."""
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet(), key=_byte_order)


def _byte_order(symbol: str) -> int:
    """Position of a byte symbol in open_clip's vocabulary (bytes_to_unicode's order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    code = ord(symbol)
    return printable.index(code) if code in printable else len(printable) + code - 256


def tokenizer_json(vocabulary: Path) -> str:
    """A ``tokenizers`` BPE tokenizer equal to open_clip's, from its ``bpe_simple_vocab``."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    with gzip.open(vocabulary) as handle:
        lines = handle.read().decode("utf-8").split("\n")[1 : MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = _byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
    bpe = models.BPE(
        vocab={token: i for i, token in enumerate(vocab)},
        merges=[(a, b) for a, b in merges],
        end_of_word_suffix="</w>",
    )
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.add_special_tokens([SOT, EOT])
    return str(tokenizer.to_str())


class ClipTokenizer:
    """Token ids as open_clip makes them, as int64 rows cut to the batch's used length."""

    def __init__(self, path: Path, context_length: int = 77) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self.context_length = context_length
        ids = [self._tokenizer.token_to_id(token) for token in (SOT, EOT)]
        if None in ids:
            raise ValueError(f"{path} is not a CLIP tokenizer (no {SOT}/{EOT})")
        self.sot, self.eot = (int(i) for i in ids if i is not None)

    def ids(self, text: str) -> list[int]:
        """One text's ids between start and end of text, truncated as open_clip truncates."""
        words = WORDS.findall(clean(text))
        body: list[int] = []
        if words:
            encoded = self._tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
            body = list(encoded.ids)
        ids = [self.sot, *body, self.eot]
        if len(ids) > self.context_length:
            ids = [*ids[: self.context_length - 1], self.eot]
        return ids

    def __call__(self, texts: Sequence[str], full_context: bool = False) -> np.ndarray:
        """A zero-padded batch: as wide as its longest row, or the whole context."""
        rows = [self.ids(text) for text in texts]
        width = self.context_length if full_context else max((len(r) for r in rows), default=1)
        batch = np.zeros((len(rows), width), np.int64)
        for i, row in enumerate(rows):
            batch[i, : len(row)] = row
        return batch
