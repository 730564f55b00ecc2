"""Filtered search for bench/search.py: ``scenery.filtered_search.search_among`` with filters
keeping 50%, 10%, 1% and 0.1% of the collection, against exact filtered search.

Each filter is a random subset (independent of the vectors), held as a boolean mask over the
collection as a filter evaluated on stored columns would give it; the timed call turns the mask
into ids and searches, one query at a time. Image-like queries search with the index's image ef;
text-like ones with the gap shift and the text candidates, as the app runs them. Recall@10 is
against the exact top 10 among the filter's vectors (ties to the lower id); "min results" is the
fewest results any query got (it must be 10: every filter here keeps at least 10).
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

import numpy as np

from bench._search_measure import K, latencies_ms, log
from scenery.filtered_search import search_among
from scenery.index import VectorIndex

SHARES = (0.5, 0.1, 0.01, 0.001)
TARGET_RECALL = 0.95
TARGET_P50_MS = 5.0


@dataclass(frozen=True)
class FilteredRow:
    share: float
    matching: int
    kind: str
    plans: str
    recall: float
    p50_ms: float
    p95_ms: float
    fewest: int


def run_filtered(
    n: int,
    index: VectorIndex,
    base: np.ndarray,
    queries: dict[str, np.ndarray],
    args: argparse.Namespace,
) -> list[FilteredRow]:
    """Every share x query kind: recall@10, latency and the plans used."""
    rng = np.random.default_rng([args.seed, n, 2])
    ids = np.arange(n, dtype=np.int64)  # build_index files vector i under id i
    rows = []
    for share in SHARES:
        mask = np.zeros(n, bool)
        mask[rng.choice(n, max(K, round(n * share)), replace=False)] = True
        subset = base[mask]
        for kind, q in queries.items():
            log(f"n={n:,}: filtered search, {share:.1%} kept, {kind}")
            rows.append(_measure(index, ids, mask, subset, share, kind, q, args))
    return rows


def _measure(
    index: VectorIndex,
    ids: np.ndarray,
    mask: np.ndarray,
    subset: np.ndarray,
    share: float,
    kind: str,
    queries: np.ndarray,
    args: argparse.Namespace,
) -> FilteredRow:
    text = kind == "text-like"
    found: list[np.ndarray] = []
    plans: Counter[str] = Counter()

    def one(query: np.ndarray) -> None:
        allowed = ids[mask]
        hits, _, chosen = search_among(
            index,
            query,
            allowed,
            K,
            args.image_ef,
            shifted=text,
            candidates=args.text_candidates if text else 0,
        )
        found.append(hits)
        plans[chosen.method] += 1

    times = latencies_ms(one, queries)
    found = found[-len(queries) :]
    kept = ids[mask]
    hits = 0
    for query, got in zip(queries, found, strict=True):
        scores = subset @ query
        truth = kept[np.lexsort((kept, -scores))[:K]]
        hits += len(np.intersect1d(got, truth))
    return FilteredRow(
        share=share,
        matching=int(mask.sum()),
        kind=kind,
        plans=", ".join(f"{method} {count}" for method, count in sorted(plans.items())),
        recall=hits / (K * len(queries)),
        p50_ms=float(np.percentile(times, 50)),
        p95_ms=float(np.percentile(times, 95)),
        fewest=min(len(f) for f in found),
    )


def print_filtered(n: int, rows: list[FilteredRow]) -> None:
    print(f"\n  filtered search (scenery.filtered_search), n={n:,}, k={K}:")
    print(
        f"  {'kept':>6} {'matching':>9} {'queries':10} {'recall@10':>9} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'min results':>11}  plans (queries)"
    )
    for r in rows:
        print(
            f"  {r.share:6.1%} {r.matching:9,} {r.kind:10} {r.recall:9.3f} {r.p50_ms:7.2f} "
            f"{r.p95_ms:7.2f} {r.fewest:11}  {r.plans}"
        )
    ok = all(
        r.recall >= TARGET_RECALL and r.p50_ms <= TARGET_P50_MS and r.fewest == K for r in rows
    )
    worst = min(rows, key=lambda r: r.recall)
    slowest = max(rows, key=lambda r: r.p50_ms)
    print(
        f"  filtered verdict: {'PASS' if ok else 'FAIL'} (recall@10 >= {TARGET_RECALL} at "
        f"p50 <= {TARGET_P50_MS:g} ms, {K} results, at every share; lowest recall "
        f"{worst.recall:.3f} at {worst.share:.1%} {worst.kind}, slowest p50 {slowest.p50_ms:.2f} "
        f"ms at {slowest.share:.1%} {slowest.kind})"
    )
