"""Import throughput, stage by stage, with the tiny model and (optionally) ViT-B-32.

Run: ``python bench/import_speed.py [--images 150] [--model tiny-test --model ViT-B-32]
[--runtime torch --runtime onnx --runtime onnx-int8] [--models-dir PATH] [--quick]``. Each
model runs ``scenery import``'s own ``Importer`` on a fresh SQLite data dir over distinct photo
variants (1600 px JPEGs): that is the end-to-end figure. Then it times each
step the importer takes, each alone, in turn, with the same ``scenery.imaging`` and
``Storage`` calls and arguments (decode at the grid edge, 400 px grid thumbnail, pHash, JPEG
grid thumbnail, both files written, embedding in the settings' batch size), and prints the
pipeline's throughput as a ratio of embedding alone. ViT-B-32 uses random weights (no download).
Each ``--runtime`` (default torch) gets its own block; with more than one, the end-to-end
imports run ``--repeats`` rounds that alternate the runtimes (their median counts) and a line per
runtime gives its throughput and its ratio to torch. ONNX exports are made before any timing
into ``--models-dir``, kept there for later runs.
``--quick``: 6 images, the tiny model, a smoke run.
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

from bench._clip_runtimes import (
    RUNTIMES,
    add_models_dir_option,
    as_runtime,
    ensure_exports,
    make_embedder,
    runtime_label,
)
from bench._photos import photo_variants
from scenery.config import GRID_THUMB, PAGE_THUMB, Settings
from scenery.context import Context
from scenery.embed import Embedder
from scenery.imaging import decode, encode_thumbnail, perceptual_hashes, thumbnail
from scenery.importer import Importer, discover
from scenery.storage import Storage


def per_image(fn: Callable[[], object], items: int) -> float:
    """Milliseconds per item of one call of ``fn``."""
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) / items * 1000


def stage_times(
    files: list[Path], embedder: Embedder, settings: Settings, scratch: Path
) -> dict[str, float]:
    """Milliseconds per image for each step of ``Importer``, one step at a time."""
    n = len(files)
    datas = [f.read_bytes() for f in files]
    out: dict[str, float] = {}
    out["read + sha256"] = per_image(lambda: [hashlib.sha256(f.read_bytes()) for f in files], n)
    images: list[Image.Image] = []
    out["decode (draft, grid edge)"] = per_image(
        lambda: images.extend(
            decode(d, settings.max_image_pixels, edge=GRID_THUMB).image for d in datas
        ),
        n,
    )
    smalls: list[Image.Image] = []
    out["grid thumbnail"] = per_image(
        lambda: smalls.extend(thumbnail(image, GRID_THUMB) for image in images), n
    )
    out["perceptual hashes"] = per_image(lambda: [perceptual_hashes(s) for s in smalls], n)
    jpegs: list[bytes] = []
    out["encode grid JPEG"] = per_image(lambda: jpegs.extend(map(encode_thumbnail, smalls)), n)
    embedder.encode_images(smalls[:4])  # warm
    out["embed (batched)"] = per_image(lambda: embedder.encode_images(smalls), n)
    storage = Storage(scratch)
    shas = [hashlib.sha256(d).hexdigest() for d in datas]
    out["write original"] = per_image(
        lambda: [storage.save_original(s, "jpg", d) for s, d in zip(shas, datas, strict=True)], n
    )
    out["write grid JPEG"] = per_image(
        lambda: [
            storage.save_thumbnail(s, GRID_THUMB, j) for s, j in zip(shas, jpegs, strict=True)
        ],
        n,
    )
    return out


def page_thumbnail_ms(files: list[Path], settings: Settings, scratch: Path) -> float:
    """The one-off cost of a page-size thumbnail, paid by the first visit to an image page."""
    storage = Storage(scratch)
    shas = []
    for f in files:
        data = f.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        storage.save_original(sha, "jpg", data)
        shas.append(sha)
    return per_image(
        lambda: [storage.ensure_thumbnail(s, PAGE_THUMB, settings.max_image_pixels) for s in shas],
        len(shas),
    )


def timed_import(ctx: Context, folder: Path, expected: int) -> float:
    """Wall time of one ``Importer(ctx).run`` over every file in ``folder``."""
    started = time.perf_counter()
    report = Importer(ctx).run(discover([folder]))
    elapsed = time.perf_counter() - started
    if len(report.imported) != expected:
        raise SystemExit(
            f"the importer imported {len(report.imported)} of {expected} files: {report.failed}"
        )
    return elapsed


def run_model(model: str, files: list[Path], root: Path, args: argparse.Namespace) -> None:
    runtimes: list[str] = args.runtime
    if runtimes != ["torch"]:
        print(ensure_exports(model, runtimes, args.models_dir))
    batch_size = Settings(data_dir=root, clip_model=model).clip_batch_size
    embedders = {
        runtime: make_embedder(runtime, model, args.models_dir, batch_size=batch_size)
        for runtime in runtimes
    }
    for embedder in embedders.values():
        embedder.load()
    seconds: dict[str, list[float]] = {runtime: [] for runtime in runtimes}
    for repeat in range(args.repeats):  # alternating, so a noisy neighbour flatters none
        for runtime in runtimes:
            settings = Settings(
                data_dir=root / f"{model.replace('/', '_')}-{runtime}-{repeat}",
                clip_model=model,
                clip_runtime=as_runtime(runtime),
                warm_up=False,
            )
            seconds[runtime].append(import_seconds(settings, embedders[runtime], files))
    rates = {runtime: len(files) / statistics.median(seconds[runtime]) for runtime in runtimes}
    for runtime in runtimes:
        report(model, runtime, embedders[runtime], files, root, rates[runtime], args.repeats)
    if runtimes != ["torch"]:
        print(f"\nend-to-end import by runtime ({model}, median of {args.repeats}):")
        for runtime, rate in rates.items():
            ratio = f"{rate / rates['torch']:.2f}x torch" if "torch" in rates else "no torch run"
            print(f"runtime {runtime:10} {rate:7.1f} images/s  {ratio}")


def import_seconds(settings: Settings, embedder: Embedder, files: list[Path]) -> float:
    """One ``Importer`` run of every file into a fresh SQLite data dir: its wall seconds."""
    ctx = Context(settings, embedder=embedder)
    try:
        ctx.migrate()
        return timed_import(ctx, files[0].parent, len(files))
    finally:
        ctx.close()


def report(
    model: str,
    runtime: str,
    embedder: Embedder,
    files: list[Path],
    root: Path,
    pipeline_rate: float,
    repeats: int,
) -> None:
    settings = Settings(data_dir=root / "settings", clip_model=model, warm_up=False)
    stages = stage_times(files, embedder, settings, root / f"scratch-{runtime}")
    embed_rate = 1000 / stages["embed (batched)"]
    print(f"\n== {runtime_label(runtime, model, embedder.dim)}, {len(files)} images")
    print(f"{'step of Importer (each alone)':36} {'ms/image':>9} {'share':>7}")
    total = sum(stages.values())
    for name, ms in stages.items():
        print(f"{name:36} {ms:9.2f} {ms / total:7.1%}")
    print(f"{'sum of steps':36} {total:9.2f}")
    median = f" (median of {repeats})" if repeats > 1 else ""
    print(f"import pipeline (end to end): {pipeline_rate:7.1f} images/s{median}")
    print(f"embedding alone:              {embed_rate:7.1f} images/s")
    print(f"ratio pipeline / embedding:   {pipeline_rate / embed_rate:7.2f}")
    page_ms = page_thumbnail_ms(files[:20], settings, root / f"page-thumbs-{runtime}")
    what = f"decode + resize + JPEG {PAGE_THUMB} px"
    print(f"page thumbnail, first view:   {page_ms:7.1f} ms ({what})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--model", action="append", help="open_clip model (repeatable)")
    parser.add_argument(
        "--runtime", action="append", choices=RUNTIMES, help="CLIP runtime (repeatable; torch)"
    )
    parser.add_argument(
        "--repeats", type=int, help="end-to-end imports per runtime (1; 3 with several runtimes)"
    )
    add_models_dir_option(parser)
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 images, tiny model")
    args = parser.parse_args()
    args.runtime = list(dict.fromkeys(args.runtime or ["torch"]))
    if args.repeats is None:
        args.repeats = 1 if len(args.runtime) == 1 or args.quick else 3
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.quick:
        args.images, args.model = 6, ["tiny-test"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = photo_variants(root / "photos", args.images)
        sizes = [Image.open(f).size for f in files]
        print(
            f"threads: torch default; images: {len(files)}; median "
            f"{statistics.median(w for w, _ in sizes):.0f}x"
            f"{statistics.median(h for _, h in sizes):.0f} px, "
            f"{statistics.median(f.stat().st_size for f in files) / 1024:.0f} KiB"
        )
        for model in args.model or ["tiny-test"]:
            run_model(model, files, root, args)


if __name__ == "__main__":
    main()
