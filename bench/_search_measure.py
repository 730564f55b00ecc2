"""What bench/search.py measures: building the index (time, memory, disk), exact top-k ground
truth, one-query latencies, HNSW recall and speed-up at one ef, and the text-query paths (plain
and across the modality gap)."""

from __future__ import annotations

import contextlib
import ctypes
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenery.index import VectorIndex
from scenery.modality_gap import query_across_gap

K = 10
WARMUP_QUERIES = 20

_T0 = time.perf_counter()


def log(message: str) -> None:
    """A progress line on stderr, stamped with seconds since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Build:
    seconds: float
    rss_delta_bytes: int
    disk_bytes: int


@dataclass(frozen=True)
class Row:
    ef: int
    p50_ms: float
    p99_ms: float
    recall: float
    speedup: float


@dataclass(frozen=True)
class Truth:
    ids: np.ndarray
    top1: np.ndarray
    top10: np.ndarray


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so an RSS delta is not hidden by reuse."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def build_index(vectors: np.ndarray, m: int, ef_construction: int) -> tuple[VectorIndex, Build]:
    """Insert all vectors (in a few chunks, for progress) and measure time, memory and disk."""
    n, dim = vectors.shape
    release_free_memory()
    rss_before = rss_bytes()
    start = time.perf_counter()
    index = VectorIndex(dim, m=m, ef_construction=ef_construction, capacity=n)
    chunks = np.array_split(np.arange(n), 10 if n >= 20_000 else 1)
    for chunk in chunks:
        index.add(chunk.tolist(), vectors[chunk])
        done = int(chunk[-1]) + 1
        log(f"  built {done:,}/{n:,} ({done / (time.perf_counter() - start):,.0f} vectors/s)")
    seconds = time.perf_counter() - start
    release_free_memory()
    rss_delta = rss_bytes() - rss_before
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "index")
        disk = dir_bytes(Path(tmp) / "index")
    return index, Build(seconds, rss_delta, disk)


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int = K) -> Truth:
    """Exact top-k ids (best first) and the top-1 / k-th scores, in batches."""
    ids = np.empty((len(queries), k), np.int64)
    scores = np.empty((len(queries), k), np.float32)
    for start in range(0, len(queries), 256):
        sims = queries[start : start + 256] @ base.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_scores, axis=1)
        ids[start : start + 256] = np.take_along_axis(part, order, axis=1)
        scores[start : start + 256] = np.take_along_axis(part_scores, order, axis=1)
    return Truth(ids, scores[:, 0], scores[:, -1])


def one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """Limit numpy's BLAS to one thread, like the HNSW search: a like-for-like baseline that
    does not stall on thread hand-offs when other processes share the CPU."""
    try:
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def exact_one(base: np.ndarray, query: np.ndarray, k: int = K) -> np.ndarray:
    """Brute-force top-k of one query: the baseline HNSW has to beat."""
    sims = base @ query
    top = np.argpartition(-sims, k - 1)[:k]
    return top[np.argsort(-sims[top])]


def latencies_ms(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> np.ndarray:
    """Wall time of ``fn`` on each query, one at a time, after a short warm-up."""
    for query in queries[:WARMUP_QUERIES]:
        fn(query)
    out = np.empty(len(queries))
    for i, query in enumerate(queries):
        start = time.perf_counter()
        fn(query)
        out[i] = (time.perf_counter() - start) * 1e3
    return out


def measure_ef(
    index: VectorIndex, queries: np.ndarray, truth: Truth, ef: int, exact_p50: float
) -> Row:
    """Latency and recall@10 of HNSW at one ef."""
    found: list[np.ndarray] = []

    def one(query: np.ndarray) -> None:
        found.append(index.query(query, K, ef=ef)[0])

    times = latencies_ms(one, queries)
    found = found[-len(queries) :]  # drop the warm-up results
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth.ids, strict=True))
    p50 = float(np.percentile(times, 50))
    return Row(
        ef=ef,
        p50_ms=p50,
        p99_ms=float(np.percentile(times, 99)),
        recall=hits / (K * len(queries)),
        speedup=exact_p50 / p50,
    )


@dataclass(frozen=True)
class TextRow:
    method: str
    ef: int
    candidates: int
    p50_ms: float
    p99_ms: float
    recall: float


def measure_text_path(
    index: VectorIndex,
    queries: np.ndarray,
    truth: Truth,
    shift: np.ndarray | None,
    ef: int,
    repeats: int,
) -> TextRow:
    """Latency (median p50/p99 over ``repeats`` passes) and recall@10 of one text-query path:
    plain HNSW at ``ef`` when ``shift`` is None, else ``query_across_gap`` with ``ef`` candidates
    re-ranked by the original query."""
    found: list[np.ndarray] = []

    def one(query: np.ndarray) -> None:
        found.append(query_across_gap(index, query, shift, K, ef, ef)[0])

    passes = [latencies_ms(one, queries) for _ in range(repeats)]
    found = found[-len(queries) :]  # the last pass's results
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth.ids, strict=True))
    return TextRow(
        method="plain" if shift is None else "gap-shift",
        ef=ef,
        candidates=K if shift is None else ef,
        p50_ms=float(np.median([np.percentile(t, 50) for t in passes])),
        p99_ms=float(np.median([np.percentile(t, 99) for t in passes])),
        recall=hits / (K * len(queries)),
    )
