"""How bench/search.py reports: one table per query kind and a verdict per target and
project default."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench._search_measure import Row, TextRow, Truth

TARGET_RECALL = 0.95
TARGET_P50_MS = 2.0
TARGET_SPEEDUP = 10.0
TARGET_SIZE = 100_000


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
        setting = "index_ef_search" if kind == "image-like" else "plain text ef"
        row = next(r for r in rows if r.ef == defaults[kind])
        ok = "meets" if row.recall >= TARGET_RECALL else "MISSES"
        print(
            f"    default {setting}={row.ef} {ok} recall {TARGET_RECALL} on {kind} queries "
            f"(recall {row.recall:.3f}, p50 {row.p50_ms:.3f} ms)"
        )


TEXT_TARGET_P50_MS = 1.0


def print_text_paths(n: int, rows: list[TextRow], default_ef: int, seconds_to_shift: float) -> None:
    """The text-query paths side by side, and the verdict for the project default."""
    print(
        f"\n  text-like paths (gap-shift: scenery.modality_gap.query_across_gap; shift registered "
        f"in {seconds_to_shift:.2f} s)"
    )
    print(f"  {'method':>10} {'ef':>6} {'cands':>6} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10}")
    for row in rows:
        note = "  <- project default" if row.method == "gap-shift" and row.ef == default_ef else ""
        print(
            f"  {row.method:>10} {row.ef:>6} {row.candidates:>6} {row.p50_ms:>8.3f} "
            f"{row.p99_ms:>8.3f} {row.recall:>10.4f}{note}"
        )
    row = next(r for r in rows if r.method == "gap-shift" and r.ef == default_ef)
    met = row.recall >= TARGET_RECALL and row.p50_ms <= TEXT_TARGET_P50_MS
    print(
        f"    text-like new path at {n:,}: recall@10 {row.recall:.3f} p50 {row.p50_ms:.3f} ms "
        f"(ef={row.ef}, candidates={row.candidates}; target >= {TARGET_RECALL} at <= "
        f"{TEXT_TARGET_P50_MS:g} ms): {'met' if met else 'NOT met'}"
        + ("" if n == TARGET_SIZE else f" (target is set for {TARGET_SIZE:,}; informative here)")
    )
