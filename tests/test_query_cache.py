"""The per-process text query cache (scenery.query_cache)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from scenery.embed import OpenClipEmbedder
from scenery.query_cache import TextQueryCache, canonical_text


class Counting:
    """The tiny model, counting the texts it is asked to encode (the Embedder boundary)."""

    def __init__(self, inner: OpenClipEmbedder, name: str | None = None) -> None:
        self.inner = inner
        self.encoded: list[str] = []
        self._name = name or inner.name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def load(self) -> None:
        self.inner.load()

    def canonical_text(self, text: str) -> str:
        return self.inner.canonical_text(text)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.inner.encode_images(images)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode_text(texts)


def test_a_repeated_query_is_encoded_once_and_answers_the_same(
    tiny_embedder: OpenClipEmbedder,
) -> None:
    counting = Counting(tiny_embedder)
    cache = TextQueryCache(counting, size=8)
    first = cache.vector("misty lake")
    again = cache.vector("misty lake")
    assert counting.encoded == ["misty lake"]
    assert (cache.hits, cache.misses) == (1, 1)
    assert np.array_equal(first, again)
    assert np.abs(first - tiny_embedder.encode_text(["misty lake"])[0]).max() < 1e-6
    with pytest.raises(ValueError):
        again[0] = 1.0  # the cached vector is shared, so it cannot be changed


def test_spellings_the_tokenizer_sees_alike_share_an_entry(
    tiny_embedder: OpenClipEmbedder,
) -> None:
    counting = Counting(tiny_embedder)
    cache = TextQueryCache(counting, size=8)
    cache.vector("Misty  Lake")
    cache.vector(" misty lake ")
    cache.vector("MISTY\tLAKE")
    cache.vector("misty lakes")
    assert counting.encoded == ["Misty  Lake", "misty lakes"]
    # and they are indeed one query to the model
    same = tiny_embedder.encode_text(["Misty  Lake", "MISTY\tLAKE"])
    assert np.abs(same[0] - same[1]).max() < 1e-6
    assert canonical_text(tiny_embedder, "A &amp; B") == "a & b"


def test_the_least_recently_used_query_is_dropped(tiny_embedder: OpenClipEmbedder) -> None:
    counting = Counting(tiny_embedder)
    cache = TextQueryCache(counting, size=2)
    for text in ["a", "b", "a", "c", "a", "b"]:
        cache.vector(text)
    # "b" was dropped when "c" came (a was used more recently), so it is encoded again
    assert counting.encoded == ["a", "b", "c", "b"]
    assert len(cache) == 2


def test_size_zero_caches_nothing(tiny_embedder: OpenClipEmbedder) -> None:
    counting = Counting(tiny_embedder)
    cache = TextQueryCache(counting, size=0)
    cache.vector("fog")
    cache.vector("fog")
    assert counting.encoded == ["fog", "fog"] and len(cache) == 0


def test_entries_are_keyed_by_the_vector_space(tiny_embedder: OpenClipEmbedder) -> None:
    counting = Counting(tiny_embedder)
    cache = TextQueryCache(counting, size=8)
    cache.vector("fog")
    counting._name = "another-model"
    cache.vector("fog")
    assert counting.encoded == ["fog", "fog"]
