"""Ingest throughput per stage, and the pipeline's speed as a share of embedding alone.

Run: ``python bench/ingest.py [--images 120] [--model tiny-test --model ViT-B-32]
[--runtime torch --runtime onnx --runtime onnx-int8] [--models-dir PATH] [--quick]``.
A fake Reddit server on 127.0.0.1 serves distinct photo variants (about 1600x1000 JPEGs); the
real pipeline lists, resolves, downloads, decodes, hashes, embeds, filters and stores them into a
fresh SQLite data dir. The fake server runs in a forked process, as a remote site would.
"Embedding alone" is the same model encoding the same grid-size images in
the same batch size, with nothing else running. ViT-B-32 uses random weights (no download).
Each side runs --repeats times, alternating, and the fastest run of each counts, with the CPU
time of that same run. Each ``--runtime`` (default torch) gets its own block, the runtimes taking
turns within each repeat, and with more than one a line per runtime gives its pipeline
throughput and its ratio to torch. ONNX exports are made before any timing into
``--models-dir``, kept there for later runs.
``--quick``: 6 images, the tiny model, one run of each side.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image
from werkzeug.serving import make_server

from bench._clip_runtimes import (
    RUNTIMES,
    add_models_dir_option,
    as_runtime,
    ensure_exports,
    make_embedder,
    runtime_label,
)
from bench._photos import photo_variants
from ingest.runner import run_ingest
from ingest.summary import IngestSummary
from scenery.config import GRID_THUMB
from scenery.context import Context
from scenery.embed import Embedder
from scenery.imaging import thumbnail
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post

BATCH_SIZE = 32


@dataclass(frozen=True)
class Timed:
    """One run: images per second, and this process's CPU seconds per image in that run."""

    rate: float
    cpu_per_image: float


def embedding_alone(embedder: Embedder, files: list[Path]) -> Timed:
    """The model alone on already-decoded grid thumbnails, in the pipeline's batch size."""
    smalls = [thumbnail(Image.open(f).convert("RGB"), GRID_THUMB) for f in files]
    embedder.encode_images(smalls[:8])
    started, cpu = time.perf_counter(), _cpu()
    embedder.encode_images(smalls)
    elapsed = time.perf_counter() - started
    return Timed(len(smalls) / elapsed, (_cpu() - cpu) / len(smalls))


@contextmanager
def forked_server(fake: FakeReddit, files: list[Path]) -> Iterator[None]:
    """Serve the fake Reddit with one post per file from a forked process, as a remote site
    would be served: its CPU time and GIL are not the pipeline's."""
    server = make_server("127.0.0.1", 0, fake.app, threaded=True)
    fake.base_url = f"http://127.0.0.1:{server.server_port}"
    posts = [
        make_post(f"b{n}", url=fake.add_photo(f"/img/{f.name}", f)) for n, f in enumerate(files)
    ]
    fake.add_posts("EarthPorn", posts)
    child = multiprocessing.get_context("fork").Process(target=server.serve_forever, daemon=True)
    child.start()
    server.socket.close()  # the child accepts; this process only connects
    try:
        yield
    finally:
        child.terminate()
        child.join(5)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class PipelineRun:
    """One ingest run: what it decided, its wall time, and this process's CPU seconds."""

    summary: IngestSummary
    seconds: float
    cpu_seconds: float

    @property
    def decided(self) -> int:
        s = self.summary
        return s.published + sum(s.rejected.values()) + s.queued

    @property
    def rate(self) -> float:
        return self.decided / self.seconds

    @property
    def cpu_per_image(self) -> float:
        return self.cpu_seconds / max(self.decided, 1)


def run_pipeline(
    embedder: Embedder, model: str, runtime: str, files: list[Path], root: Path
) -> PipelineRun:
    """One ingest of every file into a fresh data dir."""
    fake = FakeReddit()
    with forked_server(fake, files):
        settings = fake.settings(
            root,
            clip_model=model,
            clip_runtime=as_runtime(runtime),
            clip_batch_size=BATCH_SIZE,
            clip_duplicate_similarity=1.01,
            clip_duplicate_borderline=1.01,
            warm_up=False,
            # issue 3's pipeline: the model-based curation filters are timed in bench/curation.py
            gallery_fit=False,
            watermark_filter=False,
            nsfw_nudenet=False,
            nsfw_clip=False,
            ocr_watermark=False,
        )
        ctx = Context(settings, embedder=embedder)
        try:
            ctx.migrate()
            started, cpu = time.perf_counter(), _cpu()
            summary = run_ingest(ctx, ["EarthPorn"], limit=len(files))
            elapsed = time.perf_counter() - started
            cpu_seconds = _cpu() - cpu
        finally:
            ctx.close()
    return PipelineRun(summary, elapsed, cpu_seconds)


def run_model(model: str, files: list[Path], root: Path, args: argparse.Namespace) -> None:
    runtimes: list[str] = args.runtime
    if runtimes != ["torch"]:
        print(ensure_exports(model, runtimes, args.models_dir))
    embedders = {
        runtime: make_embedder(runtime, model, args.models_dir, BATCH_SIZE, args.threads)
        for runtime in runtimes
    }
    for embedder in embedders.values():
        embedder.load()
    # Fastest of --repeats on both sides, alternating (and the runtimes taking turns), so a
    # noisy neighbour flatters none; each side's CPU time is that of its fastest run.
    alone: dict[str, Timed] = {}
    best: dict[str, PipelineRun] = {}
    for repeat in range(args.repeats):
        for runtime in runtimes:
            timed = embedding_alone(embedders[runtime], files)
            if runtime not in alone or timed.rate > alone[runtime].rate:
                alone[runtime] = timed
            folder = root / f"{model.replace('/', '_')}-{runtime}-{repeat}"
            run = run_pipeline(embedders[runtime], model, runtime, files, folder)
            if runtime not in best or run.seconds < best[runtime].seconds:
                best[runtime] = run
    for runtime in runtimes:
        label = runtime_label(runtime, model, embedders[runtime].dim)
        report(label, best[runtime], alone[runtime], args.repeats)
    if runtimes != ["torch"]:
        print(f"\ningest pipeline by runtime ({model}, fastest of {args.repeats}):")
        for runtime in runtimes:
            rate = best[runtime].rate
            ratio = f"{rate / best['torch'].rate:.2f}x torch" if "torch" in best else "no torch run"
            print(f"runtime {runtime:10} {rate:7.1f} images/s  {ratio}")


def report(label: str, best: PipelineRun, alone: Timed, repeats: int) -> None:
    summary = best.summary
    print(
        f"\n== {label}: {best.decided} images decided "
        f"({summary.published} published) in {best.seconds:.1f} s (fastest of {repeats})"
    )
    print(f"{'stage (summed over items/threads)':36} {'ms/image':>9}")
    for stage, seconds in sorted(summary.seconds.items(), key=lambda item: -item[1]):
        print(f"{stage:36} {seconds / max(best.decided, 1) * 1000:9.2f}")
    print(f"pipeline throughput:   {best.rate:7.1f} images/s")
    print(f"embedding alone:       {alone.rate:7.1f} images/s")
    print(f"ratio pipeline/embed:  {best.rate / alone.rate:7.2f}   (target >= 0.8 on ViT-B-32)")
    print(
        f"CPU per image: pipeline {best.cpu_per_image * 1000:.0f} ms, embedding alone "
        f"{alone.cpu_per_image * 1000:.0f} ms (process time, all cores, in the fastest run "
        "of each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--model", action="append")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch or onnxruntime threads (default: all)"
    )
    parser.add_argument(
        "--runtime", action="append", choices=RUNTIMES, help="CLIP runtime (repeatable; torch)"
    )
    add_models_dir_option(parser)
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of each side; the fastest counts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 6 images, tiny model, one run each"
    )
    args = parser.parse_args()
    args.runtime = list(dict.fromkeys(args.runtime or ["torch"]))
    if args.quick:
        args.images, args.model, args.repeats = 6, ["tiny-test"], 1
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = photo_variants(root / "photos", args.images)
        for model in args.model or ["tiny-test", "ViT-B-32"]:
            run_model(model, files, root, args)


if __name__ == "__main__":
    main()
