"""Import throughput, stage by stage, with the tiny model and (optionally) ViT-B-32.

Run: ``python bench/import_speed.py [--images 150] [--model tiny-test --model ViT-B-32]``.
Each model runs ``scenery import``'s Importer on a fresh SQLite data dir over distinct photo
variants (1600 px JPEGs), then times every stage alone on the same photos, and prints the
pipeline's throughput as a ratio of embedding alone. ViT-B-32 uses random weights (no download).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from bench._photos import photo_variants
from scenery.config import (
    GRID_THUMB,
    PAGE_THUMB,
    Settings,
)
from scenery.context import Context
from scenery.embed import OpenClipEmbedder
from scenery.imaging import decode, encode_webp, perceptual_hash, thumbnail
from scenery.importer import Importer, discover
from scenery.storage import Storage


def per_image(fn: Callable[[], object], items: int) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) / items * 1000


def stage_times(files: list[Path], embedder: OpenClipEmbedder, scratch: Path) -> dict[str, float]:
    """Milliseconds per image for each stage, run one stage at a time on one thread."""
    datas = [f.read_bytes() for f in files]
    n = len(files)
    out: dict[str, float] = {}
    out["read + sha256"] = per_image(lambda: [hashlib.sha256(f.read_bytes()) for f in files], n)
    decoded = []
    out["decode (draft)"] = per_image(lambda: decoded.extend(decode(d, 10**8) for d in datas), n)
    smalls: list[Image.Image] = []
    out["grid thumbnail"] = per_image(
        lambda: smalls.extend(thumbnail(d.image, GRID_THUMB) for d in decoded), n
    )
    storage = Storage(scratch)
    shas = [hashlib.sha256(d).hexdigest() for d in datas]
    out["write grid WebP"] = per_image(
        lambda: [
            storage.save_thumbnail(s, GRID_THUMB, encode_webp(t))
            for s, t in zip(shas, smalls, strict=True)
        ],
        n,
    )
    out["write original"] = per_image(
        lambda: [storage.save_original(s, "jpg", d) for s, d in zip(shas, datas, strict=True)], n
    )
    out["perceptual hash"] = per_image(lambda: [perceptual_hash(s) for s in smalls], n)
    embedder.encode_images(smalls[:4])  # warm
    out["embed (batched)"] = per_image(lambda: embedder.encode_images(smalls), n)
    return out


def page_thumbnail_ms(files: list[Path], scratch: Path) -> float:
    """The one-off cost of a 1600 px WebP, paid by the first visit to an image page."""
    storage = Storage(scratch)
    shas = []
    for f in files:
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        storage.save_original(sha, "jpg", f.read_bytes())
        shas.append(sha)
    return per_image(
        lambda: [storage.ensure_thumbnail(s, PAGE_THUMB, 10**8) for s in shas], len(shas)
    )


def run_model(model: str, files: list[Path], root: Path) -> None:
    embedder = OpenClipEmbedder(model, "none", batch_size=32)
    embedder.load()
    settings = Settings(data_dir=root / model.replace("/", "_"), clip_model=model, warm_up=False)
    ctx = Context(settings, embedder=embedder)
    ctx.migrate()
    started = time.perf_counter()
    report = Importer(ctx).run(discover([files[0].parent]))
    elapsed = time.perf_counter() - started
    assert len(report.imported) == len(files), report.failed
    pipeline_rate = len(files) / elapsed

    stages = stage_times(files, embedder, root / "scratch")
    embed_rate = 1000 / stages["embed (batched)"]
    print(f"\n== {model} ({embedder.dim}-d), {len(files)} images of ~1600x1000 px")
    print(f"{'stage (alone, one thread)':28} {'ms/image':>9} {'share':>7}")
    total = sum(stages.values())
    for name, ms in stages.items():
        print(f"{name:28} {ms:9.2f} {ms / total:7.1%}")
    print(f"{'sum of stages':28} {total:9.2f}")
    print(f"import pipeline (end to end): {pipeline_rate:7.1f} images/s")
    print(f"embedding alone:              {embed_rate:7.1f} images/s")
    print(f"ratio pipeline / embedding:   {pipeline_rate / embed_rate:7.2f}")
    page_ms = page_thumbnail_ms(files[:20], root / "page-thumbs")
    print(f"page thumbnail, first view:   {page_ms:7.1f} ms (decode + resize + WebP 1600 px)")
    ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--model", action="append", help="open_clip model (repeatable)")
    args = parser.parse_args()
    models = args.model or ["tiny-test"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = photo_variants(root / "photos", args.images)
        print(
            f"threads: torch default; images: {len(files)}; median file "
            f"{statistics.median(f.stat().st_size for f in files) / 1024:.0f} KiB"
        )
        for model in models:
            run_model(model, files, root)


if __name__ == "__main__":
    main()
