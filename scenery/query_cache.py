"""Text query embeddings kept per process: an LRU cache in front of the embedder.

A gallery sees the same few queries again and again (the home page's suggestions, a shared
link, a visitor paging through results); each costs a text-encoder run. The key is the
embedder's vector space name and the query as its tokenizer will see it (``canonical_text``:
for CLIP's tokenizer, open_clip's own cleaning and lower-casing), so two spellings that
tokenize alike share one entry and two that do not never do.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property

import numpy as np

from scenery.embed import Embedder
from scenery.modality_gap import GAP_STRENGTH, PROMPTS, gap_shift, text_mean


def canonical_text(embedder: Embedder, text: str) -> str:
    """The query as the embedder's tokenizer sees it, where the embedder says; else the text
    with its whitespace collapsed (which every CLIP tokenizer ignores)."""
    canonical = getattr(embedder, "canonical_text", None)
    return str(canonical(text)) if callable(canonical) else " ".join(text.split())


class TextQueryCache:
    """Embeds text queries, remembering the last ``size`` of them (0: remembers none)."""

    def __init__(self, embedder: Embedder, size: int, gap_strength: float = GAP_STRENGTH) -> None:
        self.embedder = embedder
        self.size = size
        self.gap_strength = gap_strength
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def vector(self, text: str) -> np.ndarray:
        """The query's unit vector, from the cache or the embedder."""
        key = (self.embedder.name, canonical_text(self.embedder, text))
        with self._lock:
            found = self._vectors.get(key)
            if found is not None:
                self._vectors.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        vector = np.array(self.embedder.encode_text([text])[0], dtype=np.float32)
        vector.setflags(write=False)  # shared by every later hit
        if self.size:
            with self._lock:
                self._vectors[key] = vector
                self._vectors.move_to_end(key)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return vector

    @cached_property
    def shift(self) -> np.ndarray:
        """What steers a text query's graph search across the modality gap (modality_gap)."""
        return gap_shift(text_mean(self.embedder.encode_text(list(PROMPTS))), self.gap_strength)

    def __len__(self) -> int:
        return len(self._vectors)
