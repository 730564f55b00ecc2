"""Vector search among the images a filter keeps, planned by how many it keeps.

Post-filtering an HNSW search's top k leaves too few results when the filter is selective, and
scoring every kept vector is slow when it keeps most of the gallery. So:

- **exact** when few match: one matrix product over the matching vectors
  (``VectorIndex.exact_among``). Its cost grows with the matches; an over-fetching graph search
  costs about ``wanted / share`` candidates, so exact wins while ``matching^2 <= EXACT_FACTOR *
  wanted * total`` (at 100,000 images and 10 wanted: up to about 4,000 matches).
- **graph** otherwise: the HNSW search fetches ``OVERFETCH`` times the candidates the filter's
  share should leave ``wanted`` of, and keeps the matching ones. A filter that is correlated
  with the query (it keeps a corner of the space the query is far from) leaves fewer: the fetch
  grows fourfold until enough match, and at worst the matching vectors are scored exactly, so a
  search never returns fewer than ``wanted`` when that many match.

Either way results are ranked by the query's own cosine, ties to the lower id, so the two plans
give the same page for the same query. Text queries keep their steering across the modality gap
(``shifted``): the graph is searched with the shifted query and candidates ranked by the query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scenery.index import VectorIndex, best_of

EXACT_FACTOR = 16
OVERFETCH = 2.0  # image queries: fetch twice what the filter's share should leave
OVERFETCH_TEXT = 1.25  # text queries: their candidates, a quarter more, divided by the share
GROWTH = 4


@dataclass(frozen=True)
class Plan:
    """How a filtered search runs: its method, the matching and total counts, the first fetch."""

    method: str  # "exact" or "graph"
    matching: int
    total: int
    fetch: int


def plan(matching: int, total: int, wanted: int, breadth: int = 0) -> Plan:
    """Choose exact scoring or an over-fetching graph search for a filter keeping ``matching``
    of ``total`` indexed images, when ``wanted`` results are asked for.

    ``breadth``: the candidates an unfiltered search of this kind collects anyway (a text
    query's ``index_text_candidates``); the filtered graph search collects that many matching
    ones, so it costs ``breadth / share`` and exact scoring pays off sooner."""
    reach = max(wanted, breadth)
    if matching <= wanted or matching * matching <= EXACT_FACTOR * reach * total:
        return Plan("exact", matching, total, matching)
    share = matching / max(total, 1)
    extra = OVERFETCH if reach == wanted else OVERFETCH_TEXT
    fetch = min(total, math.ceil(extra * reach / share) + wanted)
    return Plan("graph", matching, total, fetch)


def search_among(
    index: VectorIndex,
    vector: np.ndarray,
    allowed: np.ndarray,
    wanted: int,
    ef: int,
    *,
    shifted: bool = False,
    candidates: int = 0,
) -> tuple[np.ndarray, np.ndarray, Plan]:
    """Up to ``wanted`` ids among ``allowed`` (sorted, unique image ids) nearest to ``vector``,
    best first, with their cosines and the plan that found them.

    ``ef`` is the beam of an unfiltered search; ``shifted``: steer the graph search with the
    index's query shift, collecting at least ``candidates`` (a text query's setting)."""
    allowed = np.asarray(allowed, dtype=np.int64)
    total = len(index)
    breadth = candidates if shifted else 0
    chosen = plan(min(len(allowed), total), total, wanted, breadth)
    if chosen.method == "exact":
        ids, scores = index.exact_among(vector, allowed, wanted)
        return ids, scores, chosen
    fetch = chosen.fetch
    while True:
        if shifted:
            labels, scores = index.query_shifted(vector, fetch, fetch, fetch)
        else:
            labels, scores = index.query(vector, fetch, ef=max(ef, fetch))
        keep = _members(labels, allowed)
        if keep.sum() >= wanted or fetch >= total:
            ids, best = best_of(labels[keep], scores[keep], wanted)
            if len(ids) >= min(wanted, len(allowed)):
                return ids, best, chosen
            break
        fetch = min(total, fetch * GROWTH)
        if plan(len(allowed), total, fetch, breadth).method == "exact":
            break  # growing further would cost more than scoring every match
    ids, scores = index.exact_among(vector, allowed, wanted)
    return ids, scores, Plan("exact", chosen.matching, total, chosen.matching)


def _members(labels: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Which of ``labels`` are in the sorted array ``allowed``."""
    where = np.searchsorted(allowed, labels)
    where[where >= len(allowed)] = 0
    return allowed[where] == labels if len(allowed) else np.zeros(len(labels), bool)
