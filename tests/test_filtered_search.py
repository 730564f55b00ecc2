"""Filtered vector search: the planner's choice, agreement with exact filtered search at every
share of the gallery a filter keeps (independent and query-correlated filters), never a short
page when enough match, and the index's vector matrix it relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenery import filtered_search
from scenery.filtered_search import plan, search_among
from scenery.index import VectorIndex

DIM = 32
N = 4000


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def world() -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = unit(rng.normal(size=(20, DIM)))
    vectors = unit(centres[rng.integers(0, 20, N)] + 0.35 * rng.normal(size=(N, DIM)))
    ids = np.arange(1, N + 1, dtype=np.int64) * 7  # ids are not row numbers
    index = VectorIndex(DIM, m=16, ef_construction=200)
    index.add(ids.tolist(), vectors)
    return index, ids, vectors


def exact_filtered(
    ids: np.ndarray, vectors: np.ndarray, allowed: np.ndarray, query: np.ndarray, k: int
) -> list[int]:
    keep = np.isin(ids, allowed)
    scores = vectors[keep] @ query
    order = np.lexsort((ids[keep], -scores))[:k]
    return [int(i) for i in ids[keep][order]]


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01, 0.001])
def test_results_agree_with_exact_filtered_search_at_every_share(
    world: tuple[VectorIndex, np.ndarray, np.ndarray], share: float
) -> None:
    index, ids, vectors = world
    rng = np.random.default_rng(int(share * 1000) + 1)
    allowed = np.sort(rng.choice(ids, max(1, int(N * share)), replace=False))
    queries = unit(vectors[rng.integers(0, N, 40)] + 0.2 * rng.normal(size=(40, DIM)))
    recalls = []
    for query in queries:
        found, scores, chosen = search_among(index, query, allowed, 10, ef=64)
        truth = exact_filtered(ids, vectors, allowed, query, 10)
        assert len(found) == min(10, len(allowed))
        assert set(found.tolist()) <= set(allowed.tolist())
        assert np.all(np.diff(scores) <= 1e-6)  # best first
        assert np.allclose(scores, [vectors[ids == i][0] @ query for i in found], atol=1e-5)
        if chosen.method == "exact":
            assert found.tolist() == truth
        recalls.append(len(set(found.tolist()) & set(truth)) / len(truth))
    assert np.mean(recalls) >= 0.95, (share, np.mean(recalls))


def test_a_filter_far_from_the_query_still_fills_the_page(
    world: tuple[VectorIndex, np.ndarray, np.ndarray],
) -> None:
    index, ids, vectors = world
    query = vectors[0]
    # the 30% of the gallery least like the query: the graph's nearest hold none of them
    far = np.sort(ids[np.argsort(vectors @ query)[: int(N * 0.3)]])
    assert plan(len(far), N, 10).method == "graph"
    found, _, chosen = search_among(index, query, far, 10, ef=64)
    assert chosen.method == "exact"  # the fetch grew past what scoring every match costs
    assert found.tolist() == exact_filtered(ids, vectors, far, query, 10)


def test_fewer_matches_than_asked_returns_every_match_and_none_returns_nothing(
    world: tuple[VectorIndex, np.ndarray, np.ndarray],
) -> None:
    index, ids, vectors = world
    few = np.sort(ids[[5, 900, 3000]])
    found, _, _ = search_among(index, vectors[1], few, 10, ef=64)
    assert sorted(found.tolist()) == few.tolist()
    unknown = np.array([3, 5, 11], dtype=np.int64)  # not in the index
    assert len(search_among(index, vectors[1], unknown, 10, ef=64)[0]) == 0
    assert len(search_among(index, vectors[1], np.zeros(0, np.int64), 10, ef=64)[0]) == 0


def test_both_plans_give_the_same_pages(
    world: tuple[VectorIndex, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, ids, vectors = world
    allowed = np.sort(ids[::2])
    query = vectors[17]
    graph, _, chosen = search_among(index, query, allowed, 30, ef=64)
    assert chosen.method == "graph"
    monkeypatch.setattr(filtered_search, "EXACT_FACTOR", 10**9)
    exact, _, forced = search_among(index, query, allowed, 30, ef=64)
    assert forced.method == "exact"
    assert graph.tolist() == exact.tolist()
    first, _, _ = search_among(index, query, allowed, 10, ef=64)
    assert first.tolist() == exact[:10].tolist()  # page 1 of 10 is the start of 30


def test_text_queries_keep_their_shift_and_are_ranked_by_the_query(
    world: tuple[VectorIndex, np.ndarray, np.ndarray],
) -> None:
    index, ids, vectors = world
    shift = unit(vectors[:50].mean(axis=0)) * 0.5
    index.set_query_shift(shift)
    try:
        allowed = np.sort(ids[::2])
        query = unit(vectors[40] + 0.5 * vectors[41])
        found, scores, chosen = search_among(
            index, query, allowed, 10, ef=64, shifted=True, candidates=40
        )
        assert chosen.method == "graph"
        assert np.allclose(scores, [vectors[ids == i][0] @ query for i in found], atol=1e-5)
        truth = exact_filtered(ids, vectors, allowed, query, 10)
        assert len(set(found.tolist()) & set(truth)) >= 9
    finally:
        index.set_query_shift(None)


def test_the_plan_scores_few_matches_exactly_and_searches_the_graph_for_many() -> None:
    assert plan(4000, 100_000, 10).method == "exact"
    assert plan(4001, 100_000, 10).method == "graph"
    assert plan(3, 10, 10).method == "exact"
    broad = plan(50_000, 100_000, 10)
    assert broad.method == "graph" and broad.fetch == 50
    assert plan(10_000, 100_000, 10).fetch == 210


def test_the_vector_matrix_follows_adds_replacements_removals_and_reloads(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    vectors = unit(rng.normal(size=(300, DIM)))
    index = VectorIndex(DIM)
    index.add(list(range(1, 201)), vectors[:200])
    index.remove(range(1, 101))
    index.add(list(range(201, 301)), vectors[200:])  # reuses the removed rows
    index.add([150], vectors[0:1])  # a replacement keeps its row
    assert len(index._matrix) <= 256
    expected = {i: vectors[i - 1] for i in range(101, 301)}
    expected[150] = vectors[0]
    held = sorted(expected)
    assert np.array_equal(index.get_vectors(held), np.stack([expected[i] for i in held]))
    with pytest.raises(KeyError):
        index.get_vectors([5])
    index.save(tmp_path / "snap")
    loaded = VectorIndex.load(tmp_path / "snap", DIM)
    assert np.allclose(loaded.get_vectors(held), np.stack([expected[i] for i in held]), atol=0)
    loaded.compact()
    assert np.array_equal(loaded.get_vectors(held), np.stack([expected[i] for i in held]))
    ids, _ = loaded.exact_among(vectors[0], np.array(held), 3)
    assert ids[0] == 150
