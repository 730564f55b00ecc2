"""Curation costs: the BIC grid fit on 10,000 references, and scoring time per candidate.

Run: ``python bench/curation.py [--references 10000] [--model ViT-B-32] [--candidates 32]``.

1. Fit: PCA to 128 dims and the GaussianMixture grid (components x covariance types) on
   synthetic CLIP-like 512-d embeddings (the generator of bench/search.py: topics of uneven
   size, low intrinsic dimension). Target: under 3 minutes on this 2-core machine.
2. Scoring: per candidate, for each filter: gallery fit (GMM), watermark (four quadrant
   embeddings + the classifier; the whole-image embedding is the pipeline's own), NudeNet, CLIP
   zero-shot NSFW; against the base cost every candidate pays anyway (decode, thumbnail, hash,
   whole-image embedding). Each filter's share of the total per-candidate time is printed.
   The model has random weights (no download); costs do not depend on the weights.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench._photos import photo_variants
from bench.search import image_like, make_world
from scenery.config import GRID_THUMB, Settings
from scenery.curation.gallery_fit import GalleryFit, fit_gallery
from scenery.curation.nsfw import ClipNsfwScorer, NudeNetScorer
from scenery.curation.verdicts import Facts
from scenery.curation.watermark import (
    DETAIL,
    WatermarkFilter,
    detail_view,
    train_watermark,
)
from scenery.embed import OpenClipEmbedder
from scenery.imaging import decode, perceptual_hashes, thumbnail


def bench_fit(n: int) -> None:
    rng = np.random.default_rng(0)
    vectors = image_like(make_world(512, rng), n, rng)
    started = time.perf_counter()
    report = fit_gallery(vectors, "bench")
    elapsed = time.perf_counter() - started
    print(f"\n== BIC grid fit on {n:,} reference embeddings (512-d)")
    print(f"fits tried:            {len(report.bic)} (components x covariance types)")
    print(f"chosen:                {report.components} components, {report.covariance}")
    print(f"PCA dims:              {report.dims} ({report.explained_variance:.0%} of variance)")
    print(f"fit time:              {elapsed:7.1f} s   (target < 180 s)")


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Seconds per call, best of a few rounds after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def bench_scoring(model: str, n: int, root: Path) -> None:
    files = photo_variants(root / "photos", n)
    embedder = OpenClipEmbedder(model, "none", batch_size=32)
    embedder.load()
    settings = Settings(data_dir=root / "data")
    datas = [f.read_bytes() for f in files]

    def base() -> None:  # what every candidate costs without the model filters
        decoded = [decode(d, settings.max_image_pixels, edge=DETAIL).image for d in datas]
        smalls = [thumbnail(image, GRID_THUMB) for image in decoded]
        for small in smalls:
            perceptual_hashes(small)
        embedder.encode_images(smalls)

    decoded = [decode(d, settings.max_image_pixels, edge=1024).image for d in datas]
    smalls = [thumbnail(image, GRID_THUMB) for image in decoded]
    vectors = embedder.encode_images(smalls)
    facts = [
        Facts(str(i), 1, 1, "0" * 64, "0" * 64, v, s, detail_view(d))
        for i, (v, s, d) in enumerate(zip(vectors, smalls, decoded, strict=True))
    ]
    references = image_like(
        make_world(embedder.dim, np.random.default_rng(1)), 2000, np.random.default_rng(2)
    )
    gallery = GalleryFit(fit_gallery(references, embedder.name, max_components=8).model)
    watermark = WatermarkFilter(
        train_watermark(embedder, decoded[: min(16, n)], variants_per_image=1).model,
        embedder,
        0.85,
        0.5,
    )
    nudenet, clip_nsfw = NudeNetScorer(), ClipNsfwScorer(embedder)
    costs = {
        "base (decode, thumb, hash, embed)": timed(base, 1) / n,
        "gallery fit (GMM)": timed(lambda: [gallery.check(f) for f in facts], 1) / n,
        "watermark (4 embeddings + clf)": timed(lambda: watermark.prepare(facts), 1) / n,
        "NudeNet": timed(lambda: [nudenet.score(s) for s in smalls], 1) / n,
        "CLIP zero-shot NSFW": timed(lambda: clip_nsfw.probability(vectors), 3) / n,
    }
    total = sum(costs.values())
    print(f"\n== per-candidate scoring, {model} ({embedder.dim}-d), batches of {n}")
    print(f"{'stage':36} {'ms/candidate':>12} {'share':>7}")
    for stage, seconds in costs.items():
        print(f"{stage:36} {seconds * 1000:12.2f} {seconds / total:7.1%}")
    print(f"{'total':36} {total * 1000:12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--references", type=int, default=10_000)
    parser.add_argument("--model", action="append")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--skip-fit", action="store_true")
    args = parser.parse_args()
    if not args.skip_fit:
        bench_fit(args.references)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model or ["ViT-B-32"]:
            bench_scoring(model, args.candidates, Path(tmp))


if __name__ == "__main__":
    main()
