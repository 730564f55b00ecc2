"""Text queries across CLIP's modality gap: steer the HNSW search, rank by the original query.

CLIP's text and image embeddings lie in two separate cones; the offset between them is largely one
constant vector, the difference of the modalities' means (Liang et al., "Mind the Gap:
Understanding the Modality Gap in Multi-modal Contrastive Representation Learning", NeurIPS 2022).
A text query's score against an image is therefore its semantic match plus its gap component's
dot product with the image, which is close to a random number per image. That random term does
not make the exact ranking wrong (it is the ranking asked for), but it blurs the graph's
neighbourhoods for the greedy HNSW search, which needs a beam of 1024 to keep recall@10 near 0.98.

Subtracting part of the text mean (``gap_shift``) takes most of that term out of the query that
steers the search, which then finds the right region with a quarter of the beam; the candidates are
re-ranked by the original query (``VectorIndex.query_shifted``: exact scores, no vector copies).
bench/search.py measures it: at 100,000 synthetic CLIP-like vectors, recall@10 0.953 at ef=320
(p50 about 1 ms on 2 busy cores), where the plain search needs ef of 600 or more (0.936 at 512, 1.3
ms; 0.981 at 1024, 2.5 ms). Adding the image mean as well, as the paper's shift does, did not
help there (nor did the image mean alone), so ``gap_shift`` leaves it out.
"""

from __future__ import annotations

import logging

import numpy as np

from scenery.index import VectorIndex

log = logging.getLogger(__name__)

# How much of the text mean to subtract: 0.5-0.7 measured best (1.0 removes the query's own
# share of the common image direction too, and recall falls).
GAP_STRENGTH = 0.5

# The sample of text queries whose mean stands for "where text lies": queries of the kind a
# landscape gallery gets, in the forms people type them.
PROMPTS = (
    "mountain",
    "lake",
    "forest",
    "waterfall",
    "desert",
    "beach",
    "glacier",
    "canyon",
    "river",
    "volcano",
    "aurora",
    "night sky",
    "sunset",
    "sunrise",
    "fog",
    "snow",
    "autumn",
    "meadow",
    "a photo of a mountain lake",
    "misty forest at dawn",
    "waterfall in a green valley",
    "sand dunes under a blue sky",
    "waves on a rocky coast",
    "snowy peaks at sunset",
    "the milky way over the mountains",
    "northern lights over a frozen lake",
    "autumn trees by a river",
    "a lonely tree in a field",
    "red rocks in the desert",
    "a road through the mountains",
    "clouds over the valley",
    "reflection in a calm lake",
    "a glacier and icebergs",
    "a volcano erupting",
    "rolling green hills",
    "a beach with palm trees",
    "stormy sky over the sea",
    "a cave with light",
    "wildflowers in a meadow",
    "a frozen waterfall",
    "a canyon at sunset",
)


def text_mean(text_embeddings: np.ndarray) -> np.ndarray:
    """The mean of a sample of text embeddings (e.g. a fixed list of prompts), as float32."""
    sample = np.asarray(text_embeddings, dtype=np.float32)
    if sample.ndim != 2 or not len(sample):
        raise ValueError("text_mean needs a non-empty 2-d array of embeddings")
    return sample.mean(axis=0).astype(np.float32)


def gap_shift(mean_of_texts: np.ndarray, strength: float = GAP_STRENGTH) -> np.ndarray:
    """The vector to add to a text query to steer its search past the modality gap."""
    return (-strength * np.asarray(mean_of_texts, dtype=np.float32)).astype(np.float32)


def query_across_gap(
    index: VectorIndex,
    query: np.ndarray,
    shift: np.ndarray | None,
    k: int,
    ef: int,
    candidates: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return up to ``k`` (ids, cosine scores with ``query``) for a text query, best first.

    The graph is searched with ``query + shift`` for ``candidates`` hits (default: ``ef``), which
    are re-ranked exactly by ``query``. Without a shift this is the plain search at ``ef``. The
    first call with a new shift registers it in the index (one pass over the stored vectors, a few
    seconds at 100,000); call ``index.set_query_shift(shift)`` when loading the index to pay that
    up front.
    """
    if shift is None:
        return index.query(query, k, ef)
    if not index.same_shift(shift):
        log.info("registering a text query shift on an index of %d vectors", len(index))
        index.set_query_shift(shift)
    return index.query_shifted(query, k, candidates or ef, ef)
