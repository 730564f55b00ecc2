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

Filtered search (``bench/_search_filtered.py``): filters keeping 50%, 10%, 1% and 0.1% of the
collection, recall@10 against exact filtered search, latency and the planner's choices.

For text-like queries it also compares the plain search with the path across the modality gap
(``scenery.modality_gap.query_across_gap``: the graph is searched with the query minus part of the
mean text embedding, here of a separate sample of text-like vectors, and the candidates re-ranked
by the original query), each timed over ``--repeats`` passes (median p50 and p99), recall@10
against the exact top 10 of the original query; a verdict checks the project default
``index_text_candidates`` against recall@10 >= 0.95 at p50 <= 1 ms.

The data are synthetic (see ``World``), so the numbers are indicative of real CLIP embeddings,
not a replacement for measuring a real collection. The index uses the project's defaults for M
and ef_construction, and the summary checks the project's default ``index_ef_search`` (image
queries) and the plain text search's ef before ``scenery.modality_gap`` (1024).

This file runs the benchmark; ``bench/_search_data.py`` generates the vectors (``World``),
``bench/_search_measure.py`` builds the index and times the searches, and
``bench/_search_report.py`` prints the tables and verdicts.

Run from the repository root::

    python bench/search.py                      # 10k and 100k, about 2-3 minutes on 2 cores
    python bench/search.py --quick              # 2k vectors, 100 queries: a smoke run
    python bench/search.py --sizes 50000 --queries 300 --seed 1
    python bench/search.py --sizes 100000 --filtered-only   # filtered search alone

Progress goes to stderr, the result tables to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench._search_data import World, image_like, make_world, text_like  # noqa: E402
from bench._search_filtered import print_filtered, run_filtered  # noqa: E402
from bench._search_measure import (  # noqa: E402
    K,
    Row,
    TextRow,
    Truth,
    build_index,
    exact_one,
    exact_topk,
    latencies_ms,
    log,
    measure_ef,
    measure_text_path,
    one_blas_thread,
)
from bench._search_report import (  # noqa: E402
    fmt_bytes,
    print_table,
    print_text_paths,
    summarise,
)
from scenery.config import Settings  # noqa: E402
from scenery.index import VectorIndex  # noqa: E402
from scenery.modality_gap import gap_shift, text_mean  # noqa: E402

EFS = (16, 32, 64, 128, 256, 512, 1024)
EXACT_TIMING_QUERIES = 200
PLAIN_TEXT_EF = 1024  # what plain text search needed for recall 0.98 (the old path)
PLAIN_TEXT_EFS = (256, 512, 1024)
GAP_EFS = (128, 192, 256, 320, 384, 512)
TEXT_SAMPLE = 200  # text-like vectors whose mean stands in for the mean of a list of prompts


def text_paths(
    n: int, index: VectorIndex, queries: np.ndarray, truth: Truth, args: argparse.Namespace
) -> tuple[list[TextRow], float]:
    """Plain and gap-shifted text search at each ef, and the seconds the shift took to register."""
    start = time.perf_counter()
    index.set_query_shift(args.shift)
    seconds = time.perf_counter() - start
    rows = []
    for ef in sorted(set(PLAIN_TEXT_EFS) | {args.text_ef}):
        log(f"n={n:,}: text-like plain, ef={ef}")
        rows.append(measure_text_path(index, queries, truth, None, ef, args.repeats))
    for ef in sorted(set(GAP_EFS) | {args.text_candidates}):
        log(f"n={n:,}: text-like gap-shift, ef=candidates={ef}")
        rows.append(measure_text_path(index, queries, truth, args.shift, ef, args.repeats))
    return rows, seconds


def run_size(
    n: int, world: World, queries: dict[str, np.ndarray], args: argparse.Namespace
) -> None:
    rng = np.random.default_rng([args.seed, n])
    log(f"n={n:,}: generating {n:,} image-like vectors")
    base = image_like(world, n, rng)
    log(f"n={n:,}: building HNSW (M={args.m}, ef_construction={args.ef_construction})")
    index, build = build_index(base, args.m, args.ef_construction)
    assert len(index) == n
    if args.filtered_only:
        index.set_query_shift(args.shift)
        count = len(queries["image-like"])
        print(f"\n== n={n:,} vectors, dim={base.shape[1]}, {count} queries/kind ==")
        print_filtered(n, run_filtered(n, index, base, queries, args))
        return
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
    text_rows, shift_seconds = text_paths(n, index, queries["text-like"], truths["text-like"], args)
    filtered = run_filtered(n, index, base, queries, args)  # the index has the text shift now

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
    print_text_paths(n, text_rows, args.text_candidates, shift_seconds)
    print_filtered(n, filtered)
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
    parser.add_argument(
        "--text-ef", type=int, default=PLAIN_TEXT_EF, help="plain text search's ef (old path)"
    )
    parser.add_argument(
        "--text-candidates", type=int, default=settings_fields["index_text_candidates"].default
    )
    parser.add_argument(
        "--gap-strength", type=float, default=settings_fields["index_text_gap_strength"].default
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes per text-like path (median)"
    )
    parser.add_argument(
        "--filtered-only", action="store_true", help="build, then measure filtered search only"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.repeats = [2_000], 100, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    world = make_world(args.dim, rng)
    queries = {
        "image-like": image_like(world, args.queries, rng),
        "text-like": text_like(world, args.queries, rng),
    }
    # A separate draw from the same world, as the prompts' embeddings would be in production.
    sample = text_like(world, TEXT_SAMPLE, np.random.default_rng([args.seed, 1]))
    args.shift = gap_shift(text_mean(sample), args.gap_strength)
    print(
        f"Scenery search benchmark: VectorIndex (hnswlib, M={args.m}, "
        f"ef_construction={args.ef_construction}, 1 thread) vs exact numpy search (1 BLAS thread); "
        f"k={K}, seed={args.seed}; text gap shift strength {args.gap_strength}"
    )
    start = time.perf_counter()
    for n in args.sizes:
        run_size(n, world, queries, args)
    print(f"\ntotal time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
