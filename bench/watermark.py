"""Watermark signals on a labelled set built from the sample photos: OCR text, CLIP quadrants.

Run: ``python bench/watermark.py [--photos 30] [--side 1024 --side 640] [--clip-model tiny-test]
[--quick]``.

The set: each base photo (``bench._photos.photo_variants``: the sample photos, then crops,
tones and mirrors of them) once clean, once with scene text (a sign set into the scene in
perspective), and once in each watermark style (``bench._watermark_styles``): a corner
signature, an @handle, a URL, semi-transparent centred text, tiled stock text and a small
logo-like mark, the text size and opacity taking turns over three values each.

For each OCR input size (``--side``; the first is the one the later sections use) it prints,
per style, how many were rejected, queued and passed, recall (flagged: rejected or queued, as
``scenery evaluate`` counts; and rejected only) and precision against every clean and
scene-text photo; the same counts for the clean and scene-text photos; the thresholds; and
the OCR stage's cost per candidate (making the text view, reading, judging; median and p90
ms). Precision depends on how many negatives there are: here one clean and one scene-text
photo per base, against one marked copy per style.

The CLIP quadrant detector has to be trained (``train_watermark``, as ``scenery train
watermark`` does) on other crops of the same photos; with random weights (``tiny-test``, or
any model without its download) it separates nothing, and its figures are at chance. Then the
combined verdict: rejected if either signal fails, queued if either queues.

Acceptance: OCR recall (flagged) >= 0.90 over the text styles with no clean or scene-text
photo rejected. ``--quick``: 4 photos, one input size, the tiny model; a smoke run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from bench._photos import photo_variants
from bench._watermark_styles import NEGATIVES, OPACITIES, SIZES, STYLES, Style
from scenery.config import GRID_THUMB, Settings
from scenery.curation.ocr_watermark import OcrReader, OcrWatermarkFilter, text_view
from scenery.curation.verdicts import Facts, FilterResult, Verdict
from scenery.curation.watermark import WatermarkFilter, detail_view, train_watermark
from scenery.embed import OpenClipEmbedder
from scenery.imaging import thumbnail

ACCEPT_RECALL = 0.90


@dataclass
class Item:
    style: Style
    drawn: str  # the text drawn ("" for clean photos)
    image: Image.Image
    size: float
    opacity: float

    @property
    def positive(self) -> bool:
        return self.style in STYLES


def build_set(bases: Sequence[Path], seed: int) -> list[Item]:
    """Every base photo clean, with scene text and in every watermark style."""
    rng = random.Random(seed)
    items = []
    for i, path in enumerate(bases):
        photo = Image.open(path).convert("RGB")
        for k, style in enumerate((*NEGATIVES, *STYLES)):
            size, opacity = SIZES[(i + k) % len(SIZES)], OPACITIES[(i + 2 * k) % len(OPACITIES)]
            image, drawn = style.draw(photo, rng, size, opacity)
            items.append(Item(style, drawn, image, size, opacity))
    return items


def run_ocr(
    items: Sequence[Item], side: int, settings: Settings
) -> tuple[list[FilterResult], list[float]]:
    """Each item's OCR verdict and the OCR stage's milliseconds (view, read, judge)."""
    ocr = OcrWatermarkFilter(
        OcrReader(side, settings.ocr_threads),
        settings.ocr_watermark_threshold,
        settings.ocr_watermark_borderline,
    )
    ocr.reader.read(items[0].image)  # load the models and warm up once
    results, costs = [], []
    for n, item in enumerate(items):
        small = thumbnail(item.image, GRID_THUMB)
        started = time.perf_counter()
        facts = _facts(n, item, small, text=text_view(item.image, side))
        results.append(ocr.check(facts))
        costs.append((time.perf_counter() - started) * 1000)
    return results, costs


def _facts(
    n: int,
    item: Item,
    small: Image.Image,
    vector: np.ndarray | None = None,
    detail: Image.Image | None = None,
    text: Image.Image | None = None,
) -> Facts:
    vector = np.zeros(1, np.float32) if vector is None else vector
    size = item.image.size
    return Facts(f"item-{n}", *size, "0" * 16, "0" * 16, vector, small, detail, text)


def table(title: str, items: Sequence[Item], verdicts: Sequence[Verdict]) -> tuple[float, int]:
    """Print counts, recall and precision per style; return text recall, negatives rejected."""
    by_style: dict[str, Counter[Verdict]] = {}
    for item, verdict in zip(items, verdicts, strict=True):
        by_style.setdefault(item.style.name, Counter())[verdict] += 1
    negatives = [by_style.get(s.name, Counter()) for s in NEGATIVES]
    false_flags = sum(c[Verdict.FAIL] + c[Verdict.BORDERLINE] for c in negatives)
    print(f"\n{title}")
    print(
        f"{'style':24} {'n':>4} {'rejected':>8} {'queued':>7} {'passed':>7} "
        f"{'recall':>7} {'recall(reject)':>15} {'precision':>10}"
    )
    text = Counter[Verdict]()
    for style in STYLES:
        counts = by_style.get(style.name, Counter())
        if style.text:
            text.update(counts)
        _row(style.name + ("" if style.text else " (not text)"), counts, false_flags)
    _row("text styles (overall)", text, false_flags)
    for style in NEGATIVES:
        counts = by_style.get(style.name, Counter())
        print(
            f"{style.name:24} {sum(counts.values()):4d} {counts[Verdict.FAIL]:8d} "
            f"{counts[Verdict.BORDERLINE]:7d} {counts[Verdict.PASS]:7d}"
        )
    n = sum(text.values())
    recall = (text[Verdict.FAIL] + text[Verdict.BORDERLINE]) / n if n else 0.0
    return recall, sum(c[Verdict.FAIL] for c in negatives)


def _row(name: str, counts: Counter[Verdict], false_flags: int) -> None:
    n = sum(counts.values())
    fail, queued = counts[Verdict.FAIL], counts[Verdict.BORDERLINE]
    flagged = fail + queued
    precision = flagged / (flagged + false_flags) if flagged + false_flags else 0.0
    print(
        f"{name:24} {n:4d} {fail:8d} {queued:7d} {counts[Verdict.PASS]:7d} "
        f"{flagged / n if n else 0:7.2f} {fail / n if n else 0:15.2f} {precision:10.2f}"
    )


def cost_line(label: str, costs: Sequence[float]) -> None:
    ordered = sorted(costs)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    print(
        f"{label}: median {statistics.median(ordered):.0f} ms, p90 {p90:.0f} ms "
        f"over {len(ordered)} candidates"
    )


def show_errors(items: Sequence[Item], results: Sequence[FilterResult], limit: int) -> None:
    """The marked photos passed and the clean or scene-text photos flagged, with their reasons."""
    missed = [
        (i, r)
        for i, r in zip(items, results, strict=True)
        if i.positive and i.style.text and r.verdict == Verdict.PASS
    ]
    flagged = [
        (i, r)
        for i, r in zip(items, results, strict=True)
        if not i.positive and r.verdict != Verdict.PASS
    ]
    for label, rows in (("missed", missed), ("negatives flagged", flagged)):
        print(f"{label}: {len(rows)}")
        for item, result in rows[:limit]:
            print(
                f"  {item.style.name} {item.drawn!r} (size {item.size}, opacity {item.opacity}):"
                f" {result.verdict.value}: {result.reason}"
            )


def bench_clip(
    model: str, items: Sequence[Item], train: Sequence[Path], settings: Settings
) -> list[Verdict]:
    """Train the quadrant detector on other crops, then judge every item; its verdicts."""
    embedder = OpenClipEmbedder(model, "none", batch_size=32)
    embedder.load()
    references = [Image.open(p).convert("RGB") for p in train]
    training = train_watermark(embedder, references, variants_per_image=2)
    detector = WatermarkFilter(
        training.model, embedder, settings.watermark_threshold, settings.watermark_borderline
    )
    print(
        f"\n== CLIP quadrant detector ({model}, random weights: no download, so it sees "
        "nothing and its figures are at chance)"
    )
    print(
        f"trained on {len(references)} other crops of the photos and synthetic marks: "
        f"held-out accuracy {training.accuracy:.2f}, precision {training.precision:.2f}, "
        f"recall {training.recall:.2f}"
    )
    smalls = [thumbnail(item.image, GRID_THUMB) for item in items]
    vectors = embedder.encode_images(smalls)
    verdicts, costs = [], []
    for n, (item, small, vector) in enumerate(zip(items, smalls, vectors, strict=True)):
        started = time.perf_counter()
        facts = _facts(n, item, small, vector=np.asarray(vector), detail=detail_view(item.image))
        verdicts.append(detector.check(facts).verdict)
        costs.append((time.perf_counter() - started) * 1000)
    table(
        f"CLIP quadrant detector, thresholds: fail >= {settings.watermark_threshold:.2f}, "
        f"queue >= {settings.watermark_borderline:.2f}",
        items,
        verdicts,
    )
    cost_line("CLIP quadrant stage per candidate (448 px view, 4 quadrant embeddings)", costs)
    return verdicts


def combined(ocr: Sequence[Verdict], clip: Sequence[Verdict]) -> list[Verdict]:
    """Rejected if either signal fails, queued if either queues."""
    rank = {Verdict.PASS: 0, Verdict.BORDERLINE: 1, Verdict.FAIL: 2}
    return [max(a, b, key=rank.__getitem__) for a, b in zip(ocr, clip, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=30, help="base photos (15 are originals)")
    parser.add_argument("--side", type=int, action="append", help="OCR input long side(s)")
    parser.add_argument("--clip-model", default="tiny-test", help="'skip' leaves it out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 photos, one size")
    args = parser.parse_args()
    settings = Settings()
    sides = args.side or ([settings.ocr_max_side] if args.quick else [settings.ocr_max_side, 640])
    n = 4 if args.quick else args.photos
    with tempfile.TemporaryDirectory() as tmp:
        paths = photo_variants(Path(tmp) / "photos", 2 * n)
        items = build_set(paths[:n], args.seed)
        print(
            f"labelled set: {n} base photos x ({len(NEGATIVES)} negatives + {len(STYLES)} styles)"
            f" = {len(items)} images; text sizes {SIZES} of the height, opacities {OPACITIES}"
        )
        summary = []
        for side in sides:
            results, costs = run_ocr(items, side, settings)
            verdicts = [r.verdict for r in results]
            if side == sides[0]:
                ocr_verdicts = verdicts
            recall, rejected = table(
                f"== OCR signal (RapidOCR PP-OCRv4), input long side {side} px, thresholds: "
                f"fail >= {settings.ocr_watermark_threshold:.2f}, "
                f"queue >= {settings.ocr_watermark_borderline:.2f}",
                items,
                verdicts,
            )
            cost_line(f"OCR stage per candidate at {side} px", costs)
            show_errors(items, results, limit=3 if args.quick else 12)
            summary.append((side, recall, rejected, statistics.median(costs)))
        print("\n== OCR input size: recall over text styles vs cost")
        for side, recall, rejected, median in summary:
            print(
                f"side {side} px: recall {recall:.2f}, clean or scene-text rejected {rejected}, "
                f"median {median:.0f} ms"
            )
        side, recall, rejected, _ = summary[0]
        ok = recall >= ACCEPT_RECALL and rejected == 0
        print(
            f"acceptance at {side} px (recall >= {ACCEPT_RECALL:.2f} over text styles, no clean "
            f"or scene-text photo rejected): {'PASS' if ok else 'FAIL'}"
        )
        if args.clip_model != "skip":
            clip = bench_clip(args.clip_model, items, paths[n:], settings)
            table(
                "== combined (rejected if either fails, queued if either queues)",
                items,
                combined(ocr_verdicts, clip),
            )


if __name__ == "__main__":
    main()
