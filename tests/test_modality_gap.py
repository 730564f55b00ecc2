"""Text queries across the modality gap: exact top-k and scores of the original query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenery.index import VectorIndex
from scenery.modality_gap import gap_shift, query_across_gap, text_mean

DIM = 48


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def world(n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered image-like vectors, and text-like queries far across a gap (with a sample)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, DIM))
    common = rng.normal(size=DIM)
    images = unit(common + centres[rng.integers(0, 12, n)] + 0.5 * rng.normal(size=(n, DIM)))
    gap = rng.normal(size=DIM) * 3

    def texts(count: int) -> np.ndarray:
        topic = centres[rng.integers(0, 12, count)]
        return unit(gap + 0.3 * common + 0.6 * topic + 0.4 * rng.normal(size=(count, DIM)))

    return images, texts(queries), texts(50)


def exact(vectors: np.ndarray, query: np.ndarray, k: int, ids: np.ndarray) -> list[int]:
    return [int(ids[i]) for i in np.argsort(-(vectors @ query))[:k]]


def test_returns_the_exact_top_k_where_a_narrow_plain_search_misses() -> None:
    images, queries, sample = world(1500, 20)
    ids = np.arange(1500)
    index = VectorIndex(DIM)
    index.add(ids.tolist(), images)
    shift = gap_shift(text_mean(sample), 0.8)
    plain_misses = steered_differs = 0
    for query in queries:
        truth = exact(images, query, 10, ids)
        plain_misses += set(index.query(query, 10, ef=10)[0]) != set(truth)
        steered = exact(images, query + shift, 10, ids)
        steered_differs += set(steered) != set(truth)
        found, scores = query_across_gap(index, query, shift, 10, ef=1500)
        assert list(found) == truth
        assert np.allclose(scores, images[found] @ query, atol=1e-5)
        assert list(scores) == sorted(scores, reverse=True)
    # The case is a real one: a narrow beam misses, and the steering query ranks differently.
    assert plain_misses > 0 and steered_differs > 0


def test_never_more_than_k_and_fewer_only_when_fewer_exist() -> None:
    images, queries, sample = world(6, 1)
    index = VectorIndex(DIM)
    shift = gap_shift(text_mean(sample))
    assert len(query_across_gap(index, queries[0], shift, 3, ef=16)[0]) == 0
    index.add(list(range(6)), images)
    assert len(query_across_gap(index, queries[0], shift, 3, ef=16, candidates=3)[0]) == 3
    found, scores = query_across_gap(index, queries[0], shift, 10, ef=16)
    assert sorted(found) == list(range(6)) and len(scores) == 6


def test_removed_and_replaced_vectors_are_scored_as_they_now_are() -> None:
    images, queries, sample = world(400, 5, seed=1)
    ids = np.arange(400)
    index = VectorIndex(DIM)
    index.add(ids.tolist(), images)
    shift = gap_shift(text_mean(sample))
    top = query_across_gap(index, queries[0], shift, 5, ef=400)[0]
    index.remove(top[:2].tolist())
    replaced = images.copy()
    replaced[top[2]] = queries[1]  # after the shift was registered: its new dot must be used
    index.add([int(top[2])], replaced[top[2]][None])
    live = np.setdiff1d(ids, top[:2])
    for query in queries:
        found, scores = query_across_gap(index, query, shift, 10, ef=400)
        assert list(found) == exact(replaced[live], query, 10, live)
        assert np.allclose(scores, replaced[found] @ query, atol=1e-5)
    assert query_across_gap(index, queries[1], shift, 1, ef=400)[0][0] == top[2]


def test_a_loaded_index_takes_the_shift_on_first_use(tmp_path: Path) -> None:
    images, queries, sample = world(300, 3, seed=2)
    index = VectorIndex(DIM)
    index.add(list(range(300)), images)
    index.save(tmp_path / "index")
    loaded = VectorIndex.load(tmp_path / "index", DIM)
    shift = gap_shift(text_mean(sample))
    assert loaded.query_shift is None
    found, scores = query_across_gap(loaded, queries[0], shift, 10, ef=300)
    assert np.array_equal(loaded.query_shift, shift)
    assert list(found) == exact(images, queries[0], 10, np.arange(300))
    assert np.allclose(scores, images[found] @ queries[0], atol=1e-5)


def test_without_a_shift_it_is_the_plain_search() -> None:
    images, queries, _ = world(300, 1, seed=3)
    index = VectorIndex(DIM)
    index.add(list(range(300)), images)
    found, scores = query_across_gap(index, queries[0], None, 10, ef=64)
    plain = index.query(queries[0], 10, ef=64)
    assert np.array_equal(found, plain[0]) and np.array_equal(scores, plain[1])
    assert index.query_shift is None


def test_gap_shift_subtracts_a_share_of_the_text_mean() -> None:
    sample = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    assert np.allclose(text_mean(sample), [0.5, 0.5])
    assert np.allclose(gap_shift(text_mean(sample), 0.5), [-0.25, -0.25])
    with pytest.raises(ValueError):
        text_mean(np.zeros((0, 2), np.float32))
