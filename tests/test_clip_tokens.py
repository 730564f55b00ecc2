"""The torch-free tokenizer gives open_clip's token ids (scenery.clip_tokens)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import open_clip
import pytest
from open_clip.tokenizer import default_bpe

from scenery.clip_tokens import ClipTokenizer, clean, tokenizer_json

HOSTILE = [
    "",
    "   ",
    "Misty LAKE at Dawn",
    "it's a dog's life, isn't it? O'Neill won't",
    "&amp;lt;b&amp;gt; <script>alert(1)</script> &EACUTE; &eacute;",
    "<end_of_text>",
    "x<end_of_text>y",
    "<<end_of_text>",
    "<START_OF_TEXT>hi",
    "naïve café straße İstanbul ǅ",
    "東京の夜景 🌄🏔️ sunrise ﬁrst ﬂoor",
    "tab\tnew\nline\r\u2028sep",
    "12345 67.8 ---!!!???",
    "\u202eevil mojibake Ã© e\u0301 \U0001f468\u200d\U0001f469",
    "word " * 100,
    "x" * 500,
]


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> ClipTokenizer:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_text(tokenizer_json(Path(default_bpe())))
    return ClipTokenizer(path)


def _random_texts(n: int) -> list[str]:
    rng = random.Random(5)
    alphabet = [chr(c) for c in [*range(32, 127), *range(0xA0, 0x250)]]
    alphabet += ["\u4e00", "\u3042", "\U0001f600", "\u200d", "\u0301", "'", "&", ";", "<", ">"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(n)]


def test_ids_equal_open_clips_for_hostile_and_random_text(ours: ClipTokenizer) -> None:
    reference = open_clip.get_tokenizer("ViT-B-32")
    texts = HOSTILE + _random_texts(1500)
    expected = reference(texts).numpy()
    got = ours(texts, full_context=True)
    mismatched = [t for t, a, b in zip(texts, expected, got, strict=True) if not (a == b).all()]
    assert not mismatched, mismatched[:5]


def test_a_batch_is_as_wide_as_its_longest_query(ours: ClipTokenizer) -> None:
    batch = ours(["a", "misty lake at dawn"])
    assert batch.shape == (2, 6) and batch.dtype == np.int64
    assert list(batch[0]) == [ours.sot, batch[0][1], ours.eot, 0, 0, 0]
    overlong = ours(["word " * 100])
    assert overlong.shape == (1, 77) and overlong[0, -1] == ours.eot


def test_clean_is_open_clips_cleaning() -> None:
    assert clean("  Misty\t\tLAKE &amp;amp; Fog ") == "misty lake & fog"
    assert clean("A&amp;B  C") == "a&b c" != clean("A&amp;BC")
