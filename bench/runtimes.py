"""CLIP runtimes side by side: torch, ONNX fp32 and ONNX int8 (``SCENERY_CLIP_RUNTIME``).

Run: ``python bench/runtimes.py [--model ViT-B-32] [--models-dir PATH] [--quick]``. Random
weights (no download; the speed is the same). The ONNX exports are made once into
``--models-dir`` and reused by later runs (the time an export took is printed when it happens).
For each runtime: text query latency one query at a time (distinct 1-8 word queries, with the
short context and, for torch and ONNX fp32, the full 77-token one), image embedding throughput
at batch 1 and 32 (photos decoded beforehand), the time to load a new embedder, and a fresh
process that loads it and embeds one image and one text (its VmRSS; whether torch came in).
Then, on a collection of photo variants: int8 against fp32 (cosine of each embedding, and how
much of each exact top 10 int8 search returns, for text queries and each photo as a query) and
fp32 ONNX against torch (max abs difference per component, which must be <= 1e-4). Every
figure is the median of several rounds that alternate the runtimes (a shared, noisy machine).
``--quick``: the tiny test model, few photos and queries, a smoke run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from bench._clip_runtimes import RUNTIMES, add_models_dir_option, ensure_exports, make_embedder
from bench._photos import PHOTOS, photo_variants
from bench._runtimes_measure import (
    cosines,
    distinct_queries,
    fresh_process,
    image_rates,
    load_seconds,
    overlap,
    text_latency,
)
from scenery.config import GRID_THUMB
from scenery.embed import Embedder
from scenery.imaging import thumbnail
from scenery.onnx_store import AGREEMENT

FULL = ("torch", "onnx")  # runtimes timed with the full context too (int8 only as it runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    add_models_dir_option(parser)
    parser.add_argument("--images", type=int, default=150, help="photos in the collection")
    parser.add_argument("--queries", type=int, default=30, help="text queries compared")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds")
    parser.add_argument("--per-round", type=int, default=40, help="queries per latency round")
    parser.add_argument("--repeats", type=int, default=3, help="throughput and load repeats")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, few inputs")
    parser.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from bench._runtimes_measure import child_report

        photo = sorted(PHOTOS.glob("*.jpg"))[0]
        print(child_report(make_embedder(args.child, args.model, args.models_dir), photo))
        return
    if args.quick:
        args.model, args.images, args.queries = "tiny-test", 40, 8
        args.rounds, args.per_round, args.repeats = 2, 8, 2
    run(args)


def run(args: argparse.Namespace) -> None:
    print(ensure_exports(args.model, list(RUNTIMES), args.models_dir))
    loads: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    short: dict[str, Embedder] = {}
    for _ in range(args.repeats):  # each round: a new object per runtime
        for runtime in RUNTIMES:
            make = partial(make_embedder, runtime, args.model, args.models_dir)
            seconds, short[runtime] = load_seconds(make)
            loads[runtime].append(seconds)
    full: dict[str, Embedder] = {}
    for runtime in FULL:
        full[runtime] = make_embedder(runtime, args.model, args.models_dir, short_context=False)
        full[runtime].load()
    with tempfile.TemporaryDirectory() as tmp:
        files = photo_variants(Path(tmp), args.images)
        photos = [thumbnail(Image.open(f).convert("RGB"), GRID_THUMB) for f in files]
    print(
        f"model {args.model} (random weights), {short['torch'].dim}-d; {len(photos)} photos "
        f"(grid size, decoded beforehand); default threads; {load_average()}"
    )
    latency_section(args, short, full)
    rates = image_rates(short, photos[:64], args.repeats, single=16)
    print(f"\n== image embedding: images/s, median of {args.repeats}")
    print(f"{'runtime':10} {'batch 1':>9} {'batch 32':>9}")
    for runtime, (one, batch) in rates.items():
        print(f"{runtime:10} {one:9.1f} {batch:9.1f}")
    process_section(args, loads)
    agreement_section(args, short, full, photos)
    print(f"at the end: {load_average()}")


def load_average() -> str:
    """The machine's 1-minute load average (it is shared: the figures are only as quiet)."""
    return f"1-minute load average {os.getloadavg()[0]:.2f}"


def latency_section(
    args: argparse.Namespace, short: dict[str, Embedder], full: dict[str, Embedder]
) -> None:
    settings = {}
    for runtime in RUNTIMES:
        settings[f"{runtime} short"] = short[runtime]
        if runtime in full:
            settings[f"{runtime} full"] = full[runtime]
    latency = text_latency(settings, args.rounds, args.per_round)
    print(
        f"\n== text query latency, one query at a time: ms, median over {args.rounds} rounds "
        f"of {args.per_round} distinct 1-8 word queries"
    )
    print(f"{'runtime':10} {'context':7} {'p50':>8} {'p90':>8}")
    for name, figures in latency.items():
        runtime, context = name.split()
        print(f"{runtime:10} {context:7} {figures.p50:8.2f} {figures.p90:8.2f}")
    ratios = ", ".join(
        f"{r} {latency[f'{r} full'].p50 / latency[f'{r} short'].p50:.2f}x" for r in full
    )
    print(f"ratio full/short p50: {ratios}")
    cross = latency["torch full"].p50 / latency["onnx short"].p50
    print(f"ratio torch-full/onnx-short p50: {cross:.2f}x")


def process_section(args: argparse.Namespace, loads: dict[str, list[float]]) -> None:
    print(
        f"\n== load: a new embedder in this process (export present), median of {args.repeats}; "
        "a fresh process that loads it and embeds one photo and one text (start to done)"
    )
    print(f"{'runtime':10} {'load s':>8} {'process s':>10} {'RSS MiB':>8}  torch imported")
    script = Path(__file__).resolve()
    for runtime in RUNTIMES:
        runs = [
            fresh_process(script, runtime, args.model, args.models_dir) for _ in range(args.repeats)
        ]
        seconds = statistics.median(run.seconds for run in runs)
        rss = statistics.median(run.rss_mib for run in runs)
        torch = "yes" if any(run.torch for run in runs) else "no"
        load = statistics.median(loads[runtime])
        print(f"{runtime:10} {load:8.2f} {seconds:10.2f} {rss:8.0f}  {torch}")


def agreement_section(
    args: argparse.Namespace,
    short: dict[str, Embedder],
    full_context: dict[str, Embedder],
    photos: list[Image.Image],
) -> None:
    queries = distinct_queries(args.queries, seed=1000)
    images = {r: short[r].encode_images(photos) for r in RUNTIMES}
    texts = {r: short[r].encode_text(queries) for r in RUNTIMES}
    full = {r: embedder.encode_text(queries) for r, embedder in full_context.items()}
    print(f"\n== agreement on {len(photos)} photos and {len(queries)} text queries")
    diffs = {
        "image": np.abs(images["onnx"] - images["torch"]).max(),
        "text short": np.abs(texts["onnx"] - full["torch"]).max(),
        "text full": np.abs(full["onnx"] - full["torch"]).max(),
    }
    worst = max(diffs.values())
    listed = ", ".join(f"{name} {value:.7f}" for name, value in diffs.items())
    print(
        f"fp32 onnx vs torch (full context) max abs difference per component: {listed} "
        f"(limit {AGREEMENT:.4f}): {'ok' if worst <= AGREEMENT else 'EXCEEDED'}"
    )
    image_cos = cosines(images["onnx-int8"], images["onnx"])
    text_cos = cosines(texts["onnx-int8"], texts["onnx"])
    print(
        f"int8 vs fp32 cosine: images min {image_cos.min():.4f} median "
        f"{np.median(image_cos):.4f}; text min {text_cos.min():.4f} median "
        f"{np.median(text_cos):.4f}"
    )
    between = images["onnx"] @ images["onnx"].T
    others = between[~np.eye(len(photos), dtype=bool)]
    to_text = texts["onnx"] @ images["onnx"].T
    print(
        f"for scale, fp32 cosine between different photos: median {np.median(others):.4f} "
        f"(p10 {np.percentile(others, 10):.4f}); text query to photo: median "
        f"{np.median(to_text):.4f} (spread p10-p90 {np.ptp(np.percentile(to_text, [10, 90])):.4f})"
    )
    for label, a, b in (
        ("int8 vs fp32", "onnx", "onnx-int8"),
        ("fp32 onnx vs torch", "torch", "onnx"),
    ):
        by_text = overlap(texts[a], images[a], texts[b], images[b])
        by_image = overlap(images[a], images[a], images[b], images[b], exclude_self=True)
        print(
            f"{label} top-10 overlap: text queries mean {by_text.mean():.3f} "
            f"(min {by_text.min():.2f}), photo queries mean {by_image.mean():.3f} "
            f"(min {by_image.min():.2f})"
        )


if __name__ == "__main__":
    main()
