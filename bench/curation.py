"""Curation costs: the BIC grid fit on 10,000 references, and scoring time per candidate.

Run: ``python bench/curation.py [--references 10000] [--model ViT-B-32] [--candidates 32]
[--quick]``.

1. Fit: PCA to 128 dims and the GaussianMixture grid (components x covariance types) on
   synthetic CLIP-like 512-d embeddings (the generator of bench/search.py: topics of uneven
   size, low intrinsic dimension). Target: under 3 minutes on this 2-core machine.
2. Scoring: per candidate, for each filter: gallery fit (GMM), watermark (four quadrant
   embeddings + the classifier; the whole-image embedding is the pipeline's own), NudeNet, CLIP
   zero-shot NSFW; against the base cost every candidate pays anyway (decode, thumbnail, hash,
   whole-image embedding). Each filter is called the way the ingest pipeline calls it: built
   as ``scenery.curation.chain`` builds it, then ``prepare_filters`` on the whole batch (NudeNet
   and CLIP NSFW score a batch at once there) and ``run_filters`` on each candidate; every timed
   round is a batch of candidates the filter has not seen (the NSFW filter caches its scores).
   Each filter's share of the total per-candidate time is printed. The model has random
   weights (no download); costs do not depend on the weights.

3. Cascade: every filter in cost order as ingest runs them (``verdicts.screen`` on the
   candidates the cheap filters let through, then ``run_cascade``), with a trained quadrant
   detector, NudeNet + CLIP NSFW and the OCR text-watermark filter where it is built. Mean cost
   per candidate, as a ratio to the base cost, on a mix where the gallery-fit thresholds reject
   70% of the candidates (the cheap filters settle them), against every filter on every
   candidate (no cascade); and the cost of a candidate that passes every filter.

``--quick``: 300 references, 4 candidates, the tiny model, a smoke run.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image as PILImage

from bench._photos import photo_variants
from bench.search import image_like, make_world
from scenery.config import GRID_THUMB, Settings
from scenery.curation.chain import OCR_MODULE
from scenery.curation.duplicates import ExactDuplicate
from scenery.curation.gallery_fit import GalleryFit, fit_gallery
from scenery.curation.nsfw import NsfwFilter
from scenery.curation.rules import ImageRules
from scenery.curation.verdicts import (
    Facts,
    Filter,
    Verdict,
    is_expensive,
    prepare_filters,
    rejected_by,
    run_cascade,
    run_filters,
    screen,
)
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


def timed(fn: Callable[[], object], repeat: int, rounds: int = 3) -> float:
    """Seconds per call, best of a few rounds after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def as_pipeline(f: Filter, facts: list[Facts]) -> Callable[[], object]:
    """One batch through ``f`` the way the pipeline runs it: ``prepare_filters`` on the batch,
    then ``run_filters`` on each candidate. Every call hands over the batch under content
    hashes the filter has not seen, as each new batch of an ingest run is."""
    rounds = itertools.count()

    def call() -> None:
        tag = next(rounds)
        batch = [dataclasses.replace(x, sha256=f"{tag}:{x.sha256}") for x in facts]
        prepare_filters([f], batch)
        for x in batch:
            run_filters([f], x)

    return call


def bench_scoring(
    model: str, n: int, root: Path
) -> tuple[float, list[Facts], list[PILImage.Image], dict[str, tuple[Filter, int]]]:
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

    # The pipeline decodes at the watermark detector's edge when that filter runs.
    decoded = [decode(d, settings.max_image_pixels, edge=DETAIL).image for d in datas]
    smalls = [thumbnail(image, GRID_THUMB) for image in decoded]
    vectors = embedder.encode_images(smalls)
    facts = [
        Facts(str(i), 1, 1, "0" * 64, "0" * 64, v, s, detail_view(d))
        for i, (v, s, d) in enumerate(zip(vectors, smalls, decoded, strict=True))
    ]
    filters = model_filters(embedder, decoded, settings)
    base_cost = timed(base, 1) / n
    costs = {"base (decode, thumb, hash, embed)": base_cost}
    for stage, (f, repeat) in filters.items():
        costs[stage] = timed(as_pipeline(f, facts), repeat) / n
    total = sum(costs.values())
    print(f"\n== per-candidate scoring, {model} ({embedder.dim}-d), batches of {n}")
    print(f"{'stage':36} {'ms/candidate':>12} {'share':>7}")
    for stage, seconds in costs.items():
        print(f"{stage:36} {seconds * 1000:12.2f} {seconds / total:7.1%}")
    print(f"{'total':36} {total * 1000:12.2f}")
    return base_cost, facts, decoded, filters


REJECTED_SHARE = 0.7


def ocr_filter(settings: Settings) -> Filter | None:
    """The OCR text-watermark filter, where it is built (``chain`` wires it the same way)."""
    import importlib.util

    if importlib.util.find_spec(OCR_MODULE) is None:
        return None
    from scenery.curation.ocr_watermark import OcrWatermarkFilter

    built: Filter | None = OcrWatermarkFilter.from_settings(settings)
    return built


def as_cascade(filters: list[Filter], facts: list[Facts]) -> Callable[[], object]:
    """One batch through the cascade as ingest runs it: the cheap filters' pre-pass, the
    expensive ones (``screen``) on the candidates left, then ``run_cascade`` on each."""
    rounds = itertools.count()
    cheap = [f for f in filters if not is_expensive(f.name)]

    def call() -> None:
        tag = next(rounds)
        batch = [dataclasses.replace(x, sha256=f"c{tag}:{x.sha256}") for x in facts]
        alive = [x for x in batch if not rejected_by(run_filters(cheap, x))]
        ran = dict(zip((x.sha256 for x in alive), screen(filters, alive), strict=True))
        for x in batch:
            run_cascade(filters, x, ran=ran.get(x.sha256, {}))

    return call


def bench_cascade(
    model: str,
    base_cost: float,
    facts: list[Facts],
    decoded: list[PILImage.Image],
    scoring: dict[str, tuple[Filter, int]],
    settings: Settings,
    rounds: int = 3,
) -> None:
    gallery = scoring["gallery fit (GMM)"][0]
    assert isinstance(gallery, GalleryFit) and gallery.model is not None
    watermark = scoring["watermark (4 embeddings + clf)"][0]
    nsfw = NsfwFilter.from_settings(settings, watermark.embedder)  # type: ignore[attr-defined]
    assert nsfw is not None
    ocr = ocr_filter(settings)
    if ocr is not None:
        side = int(getattr(ocr, "max_side", 1024))
        for x, image in zip(facts, decoded, strict=True):
            x.text_view = thumbnail(image, side)
    # The gallery fit settles 70% of the mix: its reject threshold sits at that quantile.
    scores = gallery.model.score(np.stack([x.vector for x in facts]))
    cut = float(np.quantile(scores, REJECTED_SHARE))
    mixed_fit = dataclasses.replace(
        gallery, model=dataclasses.replace(gallery.model, borderline=cut, threshold=cut)
    )
    passing_fit = dataclasses.replace(
        gallery, model=dataclasses.replace(gallery.model, borderline=-np.inf, threshold=-np.inf)
    )
    cheap: list[Filter] = [ExactDuplicate(lambda _sha: None), ImageRules(1, 100.0, 100.0)]
    expensive: list[Filter] = [nsfw, watermark, *([ocr] if ocr is not None else [])]
    mixed = [*cheap, mixed_fit, *expensive]
    rejected = sum(run_filters([mixed_fit], x)[0].verdict == Verdict.FAIL for x in facts) / len(
        facts
    )
    n = len(facts)
    no_cascade = timed(as_pipeline_all(mixed, facts), 1, rounds) / n
    cascade = timed(as_cascade(mixed, facts), 1, rounds) / n
    passes = timed(as_cascade([*cheap, passing_fit, *expensive], facts), 1, rounds) / n
    names = ", ".join(f.name for f in mixed)
    print(f"\n== cascade, {model}: {n} candidates, {rejected:.0%} rejected by the gallery fit")
    print(f"filters:               {names}")
    if ocr is None:
        print("OCR:                   not built yet (scenery.curation.ocr_watermark): left out")
    else:
        print(f"OCR:                   on (text view {getattr(ocr, 'max_side', '?')} px)")
    print(f"{'per candidate':36} {'ms':>9} {'x base':>7}")
    for label, cost in (
        ("base (decode, thumb, hash, embed)", 0.0),
        ("mix, every filter on every one", no_cascade),
        ("mix, cascade", cascade),
        ("passes every filter", passes),
    ):
        total = base_cost + cost
        print(f"{label:36} {total * 1000:9.1f} {total / base_cost:7.2f}")
    print(f"cascade on the mix:    {(base_cost + cascade) / base_cost:.2f}x base (target <= 2x)")


def as_pipeline_all(filters: list[Filter], facts: list[Facts]) -> Callable[[], object]:
    """Every filter on every candidate of a batch (ingest before the cascade)."""
    rounds = itertools.count()

    def call() -> None:
        tag = next(rounds)
        batch = [dataclasses.replace(x, sha256=f"a{tag}:{x.sha256}") for x in facts]
        prepare_filters(filters, batch)
        for x in batch:
            run_filters(filters, x)

    return call


def model_filters(
    embedder: OpenClipEmbedder, decoded: list[PILImage.Image], settings: Settings
) -> dict[str, tuple[Filter, int]]:
    """Each model filter as ``scenery.curation.chain.model_filters`` builds it from settings
    (the NSFW filter once per signal), with how many batches a timed round runs."""
    references = image_like(
        make_world(embedder.dim, np.random.default_rng(1)), 2000, np.random.default_rng(2)
    )
    gallery = fit_gallery(references, embedder.name, max_components=8).model
    watermark = train_watermark(embedder, decoded[:16], variants_per_image=1).model
    only_nudenet = settings.model_copy(update={"nsfw_nudenet": True, "nsfw_clip": False})
    only_clip = settings.model_copy(update={"nsfw_nudenet": False, "nsfw_clip": True})
    nudenet = NsfwFilter.from_settings(only_nudenet, embedder)
    clip = NsfwFilter.from_settings(only_clip, embedder)
    assert nudenet is not None and clip is not None  # each has its signal on
    return {
        "gallery fit (GMM)": (GalleryFit(gallery, len(references), settings.gmm_min_reference), 1),
        "watermark (4 embeddings + clf)": (
            WatermarkFilter(
                watermark, embedder, settings.watermark_threshold, settings.watermark_borderline
            ),
            1,
        ),
        "NudeNet (batched)": (nudenet, 1),
        "CLIP zero-shot NSFW": (clip, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--references", type=int, default=10_000)
    parser.add_argument("--model", action="append")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 300 references, 4 candidates, tiny model"
    )
    args = parser.parse_args()
    if args.quick:
        args.references, args.candidates, args.model = 300, 4, ["tiny-test"]
    if not args.skip_fit:
        bench_fit(args.references)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model or ["ViT-B-32"]:
            base, facts, decoded, filters = bench_scoring(model, args.candidates, Path(tmp))
            settings = Settings(data_dir=Path(tmp) / "data")
            rounds = 1 if args.quick else 3
            bench_cascade(model, base, facts, decoded, filters, settings, rounds)


if __name__ == "__main__":
    main()
