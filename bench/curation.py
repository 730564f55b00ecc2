"""Curation costs: the BIC grid fit on 10,000 references, and scoring time per candidate.

Run: ``python bench/curation.py [--references 10000] [--model ViT-B-32] [--candidates 32]
[--runtime onnx] [--models-dir PATH] [--quick]``.

1. Fit: PCA to 128 dims and the GaussianMixture grid (components x covariance types) on
   synthetic CLIP-like 512-d embeddings (the generator of bench/search.py: topics of uneven
   size, low intrinsic dimension). Target: under 3 minutes on this 2-core machine.
2. Scoring: per candidate, for each filter: gallery fit (GMM), watermark (four quadrant
   embeddings + the classifier; the whole-image embedding is the pipeline's own; the quadrants
   go through the int8 image tower as ``Context.quadrant_embedder`` has them unless
   SCENERY_WATERMARK_INT8=false), NudeNet, CLIP
   zero-shot NSFW; against the base cost every candidate pays anyway (decode, thumbnail, hash,
   whole-image embedding). Each filter is called the way the ingest pipeline calls it: built
   as ``scenery.curation.chain`` builds it, then ``prepare_filters`` on the whole batch (NudeNet
   and CLIP NSFW score a batch at once there) and ``run_filters`` on each candidate; every timed
   round is a batch of candidates the filter has not seen (the NSFW filter caches its scores).
   The OCR text-watermark filter decodes its own 1,024 px view from the file's bytes, as the
   ingest screening does, and that decode counts in its cost. Each filter's share of the total
   per-candidate time is printed. The model has random weights (no download); costs do not
   depend on the weights. ``--runtime`` (default: the setting's default, onnx) runs the model
   on torch, onnx or onnx-int8; the base and the quadrant embeddings use it alike.

3. Cascade: every filter in cost order as ingest runs them (``verdicts.screen`` on the
   candidates the cheap filters let through, then ``run_cascade``), with a trained quadrant
   detector, NudeNet + CLIP NSFW and the OCR text-watermark filter where it is built. Mean cost
   per candidate, as a ratio to the base cost, on a mix where the gallery-fit thresholds reject
   70% of the candidates (the cheap filters settle them), against every filter on every
   candidate (no cascade); the same mix with the OCR turned off; and the cost of a candidate
   that passes every filter.

``--quick``: 300 references, 4 candidates, the tiny model on torch, a smoke run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image as PILImage

from bench._clip_runtimes import (
    RUNTIMES,
    add_models_dir_option,
    ensure_exports,
    make_embedder,
    runtime_label,
)
from bench._photos import photo_variants
from bench.search import image_like, make_world
from scenery.config import GRID_THUMB, Settings
from scenery.curation.duplicates import ExactDuplicate
from scenery.curation.gallery_fit import GalleryFit, fit_gallery
from scenery.curation.nsfw import NsfwFilter
from scenery.curation.ocr_watermark import OcrWatermarkFilter, decoded_text_view
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
from scenery.embed import Embedder
from scenery.imaging import ImageLimits, decode, perceptual_hashes, thumbnail


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
    embedder: Embedder, quadrants: Embedder, label: str, n: int, root: Path
) -> tuple[float, list[Facts], list[PILImage.Image], dict[str, tuple[Filter, int]]]:
    files = photo_variants(root / "photos", n)
    embedder.load()
    settings = Settings(data_dir=root / "data")
    datas = [f.read_bytes() for f in files]
    ocr = ocr_filter(settings)
    limits = ImageLimits.from_settings(settings)

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
    # The OCR's view is decoded from the bytes when the OCR reads a candidate, as in ingest.
    side = settings.ocr_max_side
    facts = [
        Facts(str(i), 1, 1, "0" * 64, "0" * 64, v, s, detail_view(d))
        for i, (v, s, d) in enumerate(zip(vectors, smalls, decoded, strict=True))
    ]
    for x, data in zip(facts, datas, strict=True):
        x.text_view = partial(decoded_text_view, data, limits, side) if ocr is not None else None
    filters = model_filters(embedder, quadrants, decoded, settings)
    if ocr is not None:
        filters[f"OCR text (decode + read {side} px)"] = (ocr, 1)
    base_cost = timed(base, 1) / n
    costs = {"base (decode, thumb, hash, embed)": base_cost}
    for stage, (f, repeat) in filters.items():
        costs[stage] = timed(as_pipeline(f, facts), repeat) / n
    total = sum(costs.values())
    print(f"\n== per-candidate scoring, {label}, batches of {n}")
    print(f"{'stage':36} {'ms/candidate':>12} {'share':>7}")
    for stage, seconds in costs.items():
        print(f"{stage:36} {seconds * 1000:12.2f} {seconds / total:7.1%}")
    print(f"{'total':36} {total * 1000:12.2f}")
    return base_cost, facts, decoded, filters


REJECTED_SHARE = 0.7


def ocr_filter(settings: Settings) -> Filter | None:
    """The OCR text-watermark filter as ``chain`` builds it; None when the settings turn it off."""
    return OcrWatermarkFilter.from_settings(settings)


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
    label: str,
    base_cost: float,
    facts: list[Facts],
    decoded: list[PILImage.Image],
    scoring: dict[str, tuple[Filter, int]],
    settings: Settings,
    rounds: int = 3,
) -> None:
    gallery = scoring["gallery fit (GMM)"][0]
    assert isinstance(gallery, GalleryFit) and gallery.model is not None
    watermark = next(f for f, _ in scoring.values() if f.name == "watermark")
    nsfw = NsfwFilter.from_settings(settings, watermark.embedder)  # type: ignore[attr-defined]
    assert nsfw is not None
    ocr = next((f for f, _ in scoring.values() if f.name == "watermark_text"), None)
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
    # What the cheap filters let through runs every expensive filter: none of them rejects here
    # (random weights would make the NSFW and quadrant models reject some, sparing the rest).
    expensive = [never_failing(f) for f in (nsfw, watermark, *([ocr] if ocr else []))]
    mixed = [*cheap, mixed_fit, *expensive]
    rejected = sum(run_filters([mixed_fit], x)[0].verdict == Verdict.FAIL for x in facts) / len(
        facts
    )
    n = len(facts)
    no_cascade = timed(as_pipeline_all(mixed, facts), 1, rounds) / n
    # Every candidate gets the watermark detector's 448 px view in the pipeline's workers, before
    # any filter runs: not part of the base, so counted on every line below it.
    view = timed(lambda: [detail_view(image) for image in decoded], 1, rounds) / n
    cascade = timed(as_cascade(mixed, facts), 1, rounds) / n
    passes = timed(as_cascade([*cheap, passing_fit, *expensive], facts), 1, rounds) / n
    without_ocr = [f for f in mixed if f is not ocr]
    no_ocr = timed(as_cascade(without_ocr, facts), 1, rounds) / n if ocr is not None else None
    names = ", ".join(f.name for f in mixed)
    print(f"\n== cascade, {label}: {n} candidates, {rejected:.0%} rejected by the gallery fit")
    print(f"filters:               {names}")
    if ocr is None:
        print("OCR:                   off (SCENERY_OCR_WATERMARK=false)")
    else:
        print(f"OCR:                   on (text view {getattr(ocr, 'max_side', '?')} px)")
    print(f"watermark view:        {view * 1000:.1f} ms per candidate, counted on every line")
    print(f"{'per candidate':36} {'ms':>9} {'x base':>7}")
    lines = [
        ("base (decode, thumb, hash, embed)", 0.0),
        ("mix, every filter on every one", no_cascade),
        ("mix, cascade", cascade),
        *([("mix, cascade, OCR off", no_ocr)] if no_ocr is not None else []),
        ("passes every filter", passes),
    ]
    for what, cost in lines:
        total = base_cost + cost + (view if cost else 0.0)
        print(f"{what:36} {total * 1000:9.1f} {total / base_cost:7.2f}")
    print(
        f"cascade on the mix:    {(base_cost + cascade + view) / base_cost:.2f}x base "
        "(target <= 2x)"
    )


def never_failing(f: Filter) -> Filter:
    """A copy of an NSFW, watermark or OCR filter whose thresholds no score reaches."""
    f = copy.copy(f)
    if isinstance(f, NsfwFilter):
        f.nudenet_limits = f.clip_limits = (2.0, 1.5)
    else:
        f.threshold, f.borderline = 2.0, 1.5  # type: ignore[attr-defined]
    return f


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
    embedder: Embedder, quadrants: Embedder, decoded: list[PILImage.Image], settings: Settings
) -> dict[str, tuple[Filter, int]]:
    """Each model filter as ``scenery.curation.chain.model_filters`` builds it from settings
    (the NSFW filter once per signal), with how many batches a timed round runs."""
    references = image_like(
        make_world(embedder.dim, np.random.default_rng(1)), 2000, np.random.default_rng(2)
    )
    gallery = fit_gallery(references, embedder.name, max_components=8).model
    watermark = train_watermark(
        embedder, decoded[:16], variants_per_image=1, quadrants=quadrants
    ).model
    int8 = " int8" if quadrants is not embedder and quadrants.name.endswith("+int8") else ""
    only_nudenet = settings.model_copy(update={"nsfw_nudenet": True, "nsfw_clip": False})
    only_clip = settings.model_copy(update={"nsfw_nudenet": False, "nsfw_clip": True})
    nudenet = NsfwFilter.from_settings(only_nudenet, embedder)
    clip = NsfwFilter.from_settings(only_clip, embedder)
    assert nudenet is not None and clip is not None  # each has its signal on
    return {
        "gallery fit (GMM)": (GalleryFit(gallery, len(references), settings.gmm_min_reference), 1),
        f"watermark (4{int8} embeddings + clf)": (
            WatermarkFilter(
                watermark,
                embedder,
                settings.watermark_threshold,
                settings.watermark_borderline,
                quadrants,
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
    parser.add_argument("--runtime", choices=RUNTIMES, default=Settings().clip_runtime)
    add_models_dir_option(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 300 references, 4 candidates, the tiny model on torch",
    )
    args = parser.parse_args()
    if args.quick:
        args.references, args.candidates, args.model = 300, 4, ["tiny-test"]
        args.runtime = "torch"
    if not args.skip_fit:
        bench_fit(args.references)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model or ["ViT-B-32"]:
            # As Context.quadrant_embedder: the int8 image tower for the quadrant views
            # (not in the smoke run, which stays on torch and exports nothing).
            int8 = Settings().watermark_int8 and not args.quick
            print(
                ensure_exports(
                    model, [args.runtime, *(["onnx-int8"] if int8 else [])], args.models_dir
                )
            )
            embedder = make_embedder(args.runtime, model, args.models_dir)
            quadrants = embedder
            if int8 and args.runtime != "onnx-int8":
                quadrants = make_embedder("onnx-int8", model, args.models_dir)
            label = runtime_label(args.runtime, model, embedder.dim)
            base, facts, decoded, filters = bench_scoring(
                embedder, quadrants, label, args.candidates, Path(tmp)
            )
            settings = Settings(data_dir=Path(tmp) / "data")
            rounds = 1 if args.quick else 3
            bench_cascade(label, base, facts, decoded, filters, settings, rounds)


if __name__ == "__main__":
    main()
