"""VectorIndex: exact hits first, removal at once, growth, persistence, compaction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenery.errors import IndexMismatch
from scenery.index import MIN_CAPACITY, VectorIndex


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    points = centres[rng.integers(0, 20, n)] + 0.4 * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(-(vectors @ query))[:k])


def test_query_returns_the_exact_match_first_with_cosine_scores() -> None:
    vectors = clustered(500)
    index = VectorIndex(32)
    index.add(list(range(500)), vectors)
    ids, scores = index.query(vectors[42], k=10)
    assert ids[0] == 42 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(scores) == sorted(scores, reverse=True)
    expected = vectors[ids] @ vectors[42]
    assert np.allclose(scores, expected, atol=1e-5)
    assert set(ids) == set(exact_top(vectors, vectors[42], 10))


def test_removed_ids_vanish_at_once_and_can_come_back() -> None:
    vectors = clustered(100)
    index = VectorIndex(32)
    index.add(list(range(100)), vectors)
    index.remove([7])
    assert 7 not in index and len(index) == 99
    assert 7 not in index.query(vectors[7], k=20)[0]
    index.add([7], vectors[7:8])
    assert index.query(vectors[7], k=1)[0][0] == 7


def test_capacity_grows_automatically() -> None:
    index = VectorIndex(32)
    vectors = clustered(MIN_CAPACITY * 3)
    for start in range(0, len(vectors), 500):
        chunk = vectors[start : start + 500]
        index.add(list(range(start, start + len(chunk))), chunk)
    assert len(index) == MIN_CAPACITY * 3
    assert index.capacity >= MIN_CAPACITY * 3


def test_k_larger_than_the_index_returns_everything() -> None:
    index = VectorIndex(32)
    index.add([1, 2, 3], clustered(3))
    ids, _ = index.query(clustered(1, seed=9)[0], k=50)
    assert sorted(ids) == [1, 2, 3]
    assert len(VectorIndex(32).query(clustered(1)[0], k=5)[0]) == 0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vectors = clustered(300)
    index = VectorIndex(32)
    index.add(list(range(300)), vectors)
    index.remove([5, 6])
    index.save(tmp_path / "snap")
    loaded = VectorIndex.load(tmp_path / "snap", 32)
    assert loaded.ids == index.ids
    assert 5 not in loaded.query(vectors[5], k=10)[0]
    assert list(loaded.query(vectors[9], k=5)[0]) == list(index.query(vectors[9], k=5)[0])


def test_load_refuses_another_dimension(tmp_path: Path) -> None:
    index = VectorIndex(32)
    index.add([1], clustered(1))
    index.save(tmp_path / "snap")
    with pytest.raises(IndexMismatch):
        VectorIndex.load(tmp_path / "snap", 64)


def test_heavy_deletion_compacts_and_keeps_results_right() -> None:
    vectors = clustered(3000)
    index = VectorIndex(32)
    index.add(list(range(3000)), vectors)
    index.remove(range(0, 2500))
    assert len(index) == 500
    survivors = vectors[2500:]
    for probe in (2600, 2999):
        top = index.query(vectors[probe], k=5)[0]
        assert top[0] == probe
        assert all(i >= 2500 for i in top)
    assert set(index.query(survivors[0], k=500)[0]) == set(range(2500, 3000))


def assert_shifted_query_is_exact(index: VectorIndex, vectors: dict[int, np.ndarray]) -> None:
    ids = np.array(sorted(vectors))
    stacked = np.stack([vectors[i] for i in ids])
    for query in clustered(5, seed=9):
        found, scores = index.query_shifted(query, k=10, candidates=len(ids), ef=len(ids))
        assert list(found) == [int(ids[i]) for i in np.argsort(-(stacked @ query))[:10]]
        assert np.allclose(scores, stacked[np.searchsorted(ids, found)] @ query, atol=1e-5)


def test_shifted_query_scores_by_the_query_through_adds_removals_and_compaction() -> None:
    vectors = clustered(3000, seed=1)
    index = VectorIndex(32)
    index.add(list(range(1500)), vectors[:1500])
    index.set_query_shift(-0.8 * vectors[:50].mean(axis=0))
    index.add(list(range(1500, 3000)), vectors[1500:])  # added after the shift was set
    index.add([2003, 2700], vectors[[10, 11]])  # replaced
    live = dict(enumerate(vectors))
    live[2003], live[2700] = vectors[10], vectors[11]
    assert_shifted_query_is_exact(index, live)
    index.remove(range(2000))  # enough deleted slots to compact
    assert len(index) == 1000 and index.capacity < 3000
    assert_shifted_query_is_exact(index, {i: v for i, v in live.items() if i >= 2000})


def test_shifted_query_needs_a_shift_and_a_loaded_index_keeps_it(tmp_path: Path) -> None:
    vectors = clustered(50)
    index = VectorIndex(32)
    index.add(list(range(50)), vectors)
    with pytest.raises(ValueError):
        index.query_shifted(vectors[0], k=5, candidates=50, ef=50)
    shift = -0.5 * vectors[:10].mean(axis=0)
    index.set_query_shift(shift)
    index.remove([3, 4])
    index.save(tmp_path / "index")
    loaded = VectorIndex.load(tmp_path / "index", 32)
    assert loaded.same_shift(shift) and not loaded.same_shift(shift + 1e-3)
    assert loaded._shift_dots == index._shift_dots  # restored, not read from every vector
    live = {i: v for i, v in enumerate(vectors) if i not in (3, 4)}
    assert_shifted_query_is_exact(loaded, live)
    loaded.set_query_shift(None)
    assert loaded.query_shift is None and loaded.same_shift(None)
