"""Benchmark Scenery's HNSW search (``scenery.index.VectorIndex``) against exact numpy search.

What it measures, for each collection size (default 10,000 and 100,000 vectors, 512-d):

* build: time to insert every vector (vectors/s), the process RSS growth (VmRSS from
  ``/proc/self/status`` before and after) and the size on disk of ``VectorIndex.save``;
* exact search: ground truth (top-10 by inner product over all vectors) and the median latency
  of one brute-force numpy query (matrix-vector product + argpartition), the baseline;
* HNSW search, one query at a time with k=10, for a range of ``ef`` values: latency p50/p99 in
  ms, recall@10 against the exact top 10, and the speed-up over exact search.

Two query sets are reported separately, because CLIP serves two kinds of query:

* image-like: held-out vectors from the same distribution as the indexed ones ("more like this",
  search by uploaded picture), which sit close to their neighbours;
* text-like: vectors shaped like CLIP text embeddings, which lie across the modality gap, far from
  every image (top-1 cosine about 0.3), where an HNSW beam needs to be much wider.

The data are synthetic (see ``World``), so the numbers are indicative of real CLIP embeddings,
not a replacement for measuring a real collection. The index uses the project's defaults for M
and ef_construction, and the summary checks the project's default ``index_ef_search`` (image
queries) and ``index_text_ef`` (text queries).

Run from the repository root::

    python bench/search.py                      # 10k and 100k, about 2-3 minutes on 2 cores
    python bench/search.py --quick              # 2k vectors, 100 queries: a smoke run
    python bench/search.py --sizes 50000 --queries 300 --seed 1

Progress goes to stderr, the result tables to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scenery.config import Settings  # noqa: E402
from scenery.index import VectorIndex  # noqa: E402

K = 10
EFS = (16, 32, 64, 128, 256, 512, 1024)
TARGET_RECALL = 0.95
TARGET_P50_MS = 2.0
TARGET_SPEEDUP = 10.0
TARGET_SIZE = 100_000
EXACT_TIMING_QUERIES = 200
WARMUP_QUERIES = 20

_T0 = time.perf_counter()


def log(message: str) -> None:
    """A progress line on stderr, stamped with seconds since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --- synthetic CLIP-like embeddings -----------------------------------------------------------


@dataclass(frozen=True)
class World:
    """A fixed random "semantic world" from which image-like and text-like vectors are drawn.

    Real CLIP image embeddings are not isotropic noise (on which HNSW recall collapses): they share
    a common offset, fall into topics and sub-topics of very uneven size, and vary within a topic
    along a few directions only (low intrinsic dimension). The generator mimics that. Before
    normalisation an image vector is the sum of

    * ``sqrt(0.30) * mean``: one direction shared by every image (CLIP's common offset);
    * ``sqrt(0.10) * super``: one of 24 super-cluster directions ("landscapes", "people", ...);
    * ``sqrt(0.25) * centre``: one of 384 cluster directions, each under a random super-cluster,
      chosen with log-normal weights (sigma 1), so some topics are far larger than others;
    * ``sqrt(0.30) * basis @ z``: variation inside the cluster, in a random subspace of
      rank 24 per cluster with a power-law spectrum (variance of component i ~ 1/i, so a local
      intrinsic dimension of ~10);
    * ``sqrt(0.05) * noise``: a little isotropic noise over all dimensions.

    All directions are random unit vectors, so nearly orthogonal in 512-d. The result is
    L2-normalised. With these weights two random images have cosine ~0.3, two images of one
    cluster ~0.65, and an image's nearest neighbour in a 100k collection ~0.85, in line with
    CLIP ViT-B/32 (random pairs 0.2-0.5, near neighbours 0.8-0.95).

    A text-like vector is ``sqrt(0.84) * gap + sqrt(0.045) * mean + sqrt(0.065) * semantic +
    sqrt(0.05) * noise``, normalised, where ``gap`` is a
    direction orthogonal to the image mean (the modality gap: CLIP text and image embeddings live
    in two separate cones) and ``semantic`` is the direction of one cluster's content (its
    super-cluster and centre plus one draw of its in-cluster variation). It scores highest against
    the images of its cluster, but only at cosine ~0.3 (unrelated images ~0.12), as CLIP text
    queries do.
    """

    mean: np.ndarray
    gap: np.ndarray
    supers: np.ndarray
    parent: np.ndarray
    centres: np.ndarray
    weights: np.ndarray
    bases: np.ndarray
    spectrum: np.ndarray

    N_SUPER = 24
    N_CLUSTERS = 384
    RANK = 24
    SPECTRUM_DECAY = 1.0
    MEAN_VAR = 0.30
    SUPER_VAR = 0.10
    CENTRE_VAR = 0.25
    LOW_RANK_VAR = 0.30
    ISO_VAR = 0.05
    TEXT_GAP = 0.84
    TEXT_MEAN = 0.045
    TEXT_SEM = 0.065
    TEXT_NOISE = 0.05


def make_world(dim: int, rng: np.random.Generator) -> World:
    """Draw the shared directions, clusters and in-cluster subspaces."""
    mean = unit(rng.standard_normal(dim))
    gap = rng.standard_normal(dim)
    gap = unit(gap - (gap @ mean) * mean)
    parent = rng.integers(0, World.N_SUPER, World.N_CLUSTERS)
    weights = rng.lognormal(0.0, 1.0, World.N_CLUSTERS)
    bases = rng.standard_normal((World.N_CLUSTERS, dim, World.RANK)) / np.sqrt(dim)
    spectrum = np.arange(1, World.RANK + 1) ** (-World.SPECTRUM_DECAY / 2)
    return World(
        mean=mean,
        gap=gap,
        supers=unit(rng.standard_normal((World.N_SUPER, dim))),
        parent=parent,
        centres=unit(rng.standard_normal((World.N_CLUSTERS, dim))),
        weights=weights / weights.sum(),
        bases=bases.astype(np.float32),
        spectrum=(spectrum / np.linalg.norm(spectrum)).astype(np.float32),
    )


def _in_cluster(world: World, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of in-cluster variation (norm ~1) per row, in each row's cluster subspace."""
    z = rng.standard_normal((len(clusters), World.RANK)).astype(np.float32) * world.spectrum
    out = np.empty((len(clusters), world.mean.shape[0]), np.float32)
    for cluster in np.unique(clusters):
        rows = clusters == cluster
        out[rows] = z[rows] @ world.bases[cluster].T
    return out


def _topic(world: World, clusters: np.ndarray) -> np.ndarray:
    """Super-cluster plus cluster direction of each row's cluster."""
    return (
        np.sqrt(World.SUPER_VAR) * world.supers[world.parent[clusters]]
        + np.sqrt(World.CENTRE_VAR) * world.centres[clusters]
    )


def _noise(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Isotropic gaussian rows of norm ~1."""
    return rng.standard_normal((n, dim)) / np.sqrt(dim)


def image_like(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors distributed like CLIP image embeddings."""
    dim = world.mean.shape[0]
    clusters = rng.choice(World.N_CLUSTERS, n, p=world.weights)
    x = (
        np.sqrt(World.MEAN_VAR) * world.mean
        + _topic(world, clusters)
        + np.sqrt(World.LOW_RANK_VAR) * _in_cluster(world, clusters, rng)
        + np.sqrt(World.ISO_VAR) * _noise(n, dim, rng)
    )
    return unit(x).astype(np.float32)


def text_like(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors placed like CLIP text embeddings: on topic, across the modality gap."""
    dim = world.mean.shape[0]
    clusters = rng.choice(World.N_CLUSTERS, n, p=world.weights)
    semantic = unit(
        _topic(world, clusters) + np.sqrt(World.LOW_RANK_VAR) * _in_cluster(world, clusters, rng)
    )
    t = (
        np.sqrt(World.TEXT_GAP) * world.gap
        + np.sqrt(World.TEXT_MEAN) * world.mean
        + np.sqrt(World.TEXT_SEM) * semantic
        + np.sqrt(World.TEXT_NOISE) * _noise(n, dim, rng)
    )
    return unit(t).astype(np.float32)


# --- measurements -----------------------------------------------------------------------------


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


# --- reporting --------------------------------------------------------------------------------


def fmt_bytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def print_table(kind: str, truth: Truth, rows: list[Row], defaults: dict[str, int]) -> None:
    print(
        f"\n  {kind} queries: exact top-1 cosine mean {truth.top1.mean():.3f} "
        f"(p10 {np.percentile(truth.top1, 10):.3f}, p90 {np.percentile(truth.top1, 90):.3f}), "
        f"10th-best mean {truth.top10.mean():.3f}"
    )
    print(f"  {'ef':>6} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10} {'vs exact':>9}")
    for row in rows:
        note = "  <- project default" if row.ef == defaults[kind] else ""
        print(
            f"  {row.ef:>6} {row.p50_ms:>8.3f} {row.p99_ms:>8.3f} {row.recall:>10.4f} "
            f"{row.speedup:>8.1f}x{note}"
        )


def smallest_ef(rows: list[Row], ok: Callable[[Row], bool]) -> Row | None:
    return next((row for row in rows if ok(row)), None)


def summarise(
    n: int, image_rows: list[Row], text_rows: list[Row], defaults: dict[str, int]
) -> None:
    """One verdict line per query kind and per project default."""

    def meets_target(row: Row) -> bool:
        return (
            row.recall >= TARGET_RECALL
            and row.p50_ms <= TARGET_P50_MS
            and row.speedup >= TARGET_SPEEDUP
        )

    target = f"recall@10 >= {TARGET_RECALL}, p50 <= {TARGET_P50_MS} ms, >= {TARGET_SPEEDUP:.0f}x"
    scope = "" if n == TARGET_SIZE else f" (target is set for {TARGET_SIZE:,}; informative here)"
    hit = smallest_ef(image_rows, meets_target)
    if hit:
        verdict = (
            f"MET at ef={hit.ef}: recall {hit.recall:.3f}, p50 {hit.p50_ms:.3f} ms, "
            f"{hit.speedup:.0f}x"
        )
    else:
        best = smallest_ef(image_rows, lambda r: r.recall >= TARGET_RECALL)
        verdict = "NOT met" + (
            f" (recall {TARGET_RECALL} first at ef={best.ef}: p50 {best.p50_ms:.3f} ms, "
            f"{best.speedup:.1f}x)"
            if best
            else f" (recall {TARGET_RECALL} not reached up to ef={image_rows[-1].ef})"
        )
    print(f"\n  summary n={n:,}{scope}")
    print(f"    image-like target ({target}): {verdict}")
    for kind, rows in (("image-like", image_rows), ("text-like", text_rows)):
        first = smallest_ef(rows, lambda r: r.recall >= TARGET_RECALL)
        reach = (
            f"smallest ef with recall >= {TARGET_RECALL}: {first.ef} "
            f"(recall {first.recall:.3f}, p50 {first.p50_ms:.3f} ms, {first.speedup:.1f}x)"
            if first
            else f"recall {TARGET_RECALL} not reached up to ef={rows[-1].ef}"
        )
        print(f"    {kind}: {reach}")
    for kind, rows in (("image-like", image_rows), ("text-like", text_rows)):
        setting = "index_ef_search" if kind == "image-like" else "index_text_ef"
        row = next(r for r in rows if r.ef == defaults[kind])
        ok = "meets" if row.recall >= TARGET_RECALL else "MISSES"
        print(
            f"    default {setting}={row.ef} {ok} recall {TARGET_RECALL} on {kind} queries "
            f"(recall {row.recall:.3f}, p50 {row.p50_ms:.3f} ms)"
        )


# --- driver -----------------------------------------------------------------------------------


def run_size(
    n: int, world: World, queries: dict[str, np.ndarray], args: argparse.Namespace
) -> None:
    rng = np.random.default_rng([args.seed, n])
    log(f"n={n:,}: generating {n:,} image-like vectors")
    base = image_like(world, n, rng)
    log(f"n={n:,}: building HNSW (M={args.m}, ef_construction={args.ef_construction})")
    index, build = build_index(base, args.m, args.ef_construction)
    assert len(index) == n
    log(f"n={n:,}: built in {build.seconds:.1f}s; exact ground truth")
    truths = {kind: exact_topk(base, q) for kind, q in queries.items()}
    timing_queries = queries["image-like"][:EXACT_TIMING_QUERIES]
    with one_blas_thread():
        exact_times = latencies_ms(lambda q: exact_one(base, q), timing_queries)
    exact_p50 = float(np.percentile(exact_times, 50))
    defaults = {"image-like": args.image_ef, "text-like": args.text_ef}
    efs = sorted(set(args.efs) | set(defaults.values()))
    results: dict[str, list[Row]] = {}
    for kind, q in queries.items():
        results[kind] = []
        for ef in efs:
            log(f"n={n:,}: {kind} queries, ef={ef}")
            results[kind].append(measure_ef(index, q, truths[kind], ef, exact_p50))

    print(
        f"\n== n={n:,} vectors, dim={base.shape[1]}, {len(queries['image-like'])} queries/kind =="
    )
    print(
        f"  build: {build.seconds:.1f} s ({n / build.seconds:,.0f} vectors/s), "
        f"RSS +{fmt_bytes(build.rss_delta_bytes)}, saved index {fmt_bytes(build.disk_bytes)} "
        f"(raw float32 vectors {fmt_bytes(base.nbytes)})"
    )
    print(f"  exact numpy search, one query: p50 {exact_p50:.3f} ms")
    for kind in queries:
        print_table(kind, truths[kind], results[kind], defaults)
    summarise(n, results["image-like"], results["text-like"], defaults)
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings_fields = Settings.model_fields
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000, help="queries per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--efs", type=int, nargs="+", default=list(EFS), help="ef values to try")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2,000 vectors, 100 queries"
    )
    parser.add_argument("--m", type=int, default=settings_fields["index_m"].default)
    parser.add_argument(
        "--ef-construction", type=int, default=settings_fields["index_ef_construction"].default
    )
    parser.add_argument("--image-ef", type=int, default=settings_fields["index_ef_search"].default)
    parser.add_argument("--text-ef", type=int, default=settings_fields["index_text_ef"].default)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.queries = [2_000], 100
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    world = make_world(args.dim, rng)
    queries = {
        "image-like": image_like(world, args.queries, rng),
        "text-like": text_like(world, args.queries, rng),
    }
    print(
        f"Scenery search benchmark: VectorIndex (hnswlib, M={args.m}, "
        f"ef_construction={args.ef_construction}, 1 thread) vs exact numpy search (1 BLAS thread); "
        f"k={K}, seed={args.seed}"
    )
    start = time.perf_counter()
    for n in args.sizes:
        run_size(n, world, queries, args)
    print(f"\ntotal time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
