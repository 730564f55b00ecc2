"""Ingest throughput per stage, and the pipeline's speed as a share of embedding alone.

Run: ``python bench/ingest.py [--images 120] [--model tiny-test --model ViT-B-32]``.
A fake Reddit server on 127.0.0.1 serves distinct photo variants (about 1600x1000 JPEGs); the
real pipeline lists, resolves, downloads, decodes, hashes, embeds, filters and stores them into a
fresh SQLite data dir. The fake server runs in a forked process, as a remote site would.
"Embedding alone" is the same model encoding the same grid-size images in
the same batch size, with nothing else running. ViT-B-32 uses random weights (no download).
Each side runs --repeats times, alternating, and the fastest run of each counts.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image
from werkzeug.serving import make_server

from bench._photos import photo_variants
from ingest.runner import run_ingest
from ingest.summary import IngestSummary
from scenery.context import Context
from scenery.embed import OpenClipEmbedder
from scenery.imaging import thumbnail
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post

THREADS: int | None = None  # torch threads; set from --threads
REPEATS = 2  # runs of the pipeline and of embedding alone; the fastest of each counts
CPU: dict[str, float] = {}  # process CPU seconds per image


def embedding_alone(embedder: OpenClipEmbedder, files: list[Path]) -> float:
    """Images per second for the model on already-decoded grid thumbnails."""
    smalls = [thumbnail(Image.open(f).convert("RGB"), 400) for f in files]
    embedder.encode_images(smalls[:8])
    started, cpu = time.perf_counter(), _cpu()
    embedder.encode_images(smalls)
    CPU["embedding alone"] = (_cpu() - cpu) / len(smalls)
    return len(smalls) / (time.perf_counter() - started)


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


def run_pipeline(
    embedder: OpenClipEmbedder, model: str, files: list[Path], root: Path
) -> tuple[IngestSummary, float, float]:
    """One ingest of every file into a fresh data dir: (summary, seconds, CPU s per image)."""
    fake = FakeReddit()
    with forked_server(fake, files):
        settings = fake.settings(
            root,
            clip_model=model,
            clip_batch_size=32,
            clip_duplicate_similarity=1.01,
            clip_duplicate_borderline=1.01,
            warm_up=False,
            # issue 3's pipeline: the model-based curation filters are timed in bench/curation.py
            gallery_fit=False,
            watermark_filter=False,
            nsfw_nudenet=False,
            nsfw_clip=False,
        )
        ctx = Context(settings, embedder=embedder)
        ctx.migrate()
        started, cpu = time.perf_counter(), _cpu()
        summary = run_ingest(ctx, ["EarthPorn"], limit=len(files))
        elapsed = time.perf_counter() - started
        cpu_per_image = (_cpu() - cpu) / len(files)
        ctx.close()
    return summary, elapsed, cpu_per_image


def run_model(model: str, files: list[Path], root: Path) -> None:
    embedder = OpenClipEmbedder(model, "none", batch_size=32, threads=THREADS)
    embedder.load()
    # Best of REPEATS on both sides, alternating, so a noisy neighbour flatters neither.
    alone, best = 0.0, None
    for repeat in range(REPEATS):
        alone = max(alone, embedding_alone(embedder, files))
        run = run_pipeline(embedder, model, files, root / f"{model.replace('/', '_')}-{repeat}")
        if best is None or run[1] < best[1]:
            best = run
    assert best is not None
    summary, elapsed, CPU["pipeline"] = best
    decided = summary.published + sum(summary.rejected.values()) + summary.queued
    rate = decided / elapsed
    print(
        f"\n== {model} ({embedder.dim}-d): {decided} images decided "
        f"({summary.published} published) in {elapsed:.1f} s (best of {REPEATS})"
    )
    print(f"{'stage (summed over items/threads)':36} {'ms/image':>9}")
    for stage, seconds in summary.seconds.most_common():
        print(f"{stage:36} {seconds / max(decided, 1) * 1000:9.2f}")
    print(f"pipeline throughput:   {rate:7.1f} images/s")
    print(f"embedding alone:       {alone:7.1f} images/s")
    print(f"ratio pipeline/embed:  {rate / alone:7.2f}   (target >= 0.8 on ViT-B-32)")
    print(
        f"CPU per image: pipeline {CPU['pipeline'] * 1000:.0f} ms, embedding alone "
        f"{CPU['embedding alone'] * 1000:.0f} ms (process time, all cores)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--model", action="append")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side; best counts")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    global THREADS, REPEATS
    THREADS, REPEATS = args.threads, args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = photo_variants(root / "photos", args.images)
        for model in args.model or ["tiny-test", "ViT-B-32"]:
            run_model(model, files, root)


if __name__ == "__main__":
    main()
