"""End-to-end latency of the JSON API over HTTP against a large gallery: the old query path and
the new one side by side, each in its own real gunicorn server.

Run: ``python bench/api_latency.py [--images 100000] [--model ViT-B-32] [--runtime onnx]
[--requests 100] [--data-dir PATH] [--quick]``.

The gallery (``bench/_api_gallery.py``) is a SQLite data dir with the sample photos imported
normally plus synthetic published images (clustered CLIP-like embeddings) up to ``--images``,
and an HNSW snapshot built once, so each server loads it. With ``--data-dir`` it is built there
once and reused by later runs. Random weights (SCENERY_CLIP_PRETRAINED=none): what a query
costs does not depend on them.

Two servers run one after the other on that data dir (never both at once), ``scenery serve
--prod --workers 1`` each:

* old path: SCENERY_CLIP_RUNTIME=torch, SCENERY_CLIP_SHORT_CONTEXT=false,
  SCENERY_QUERY_CACHE_SIZE=0;
* new path: SCENERY_CLIP_RUNTIME=<--runtime>, SCENERY_CLIP_SHORT_CONTEXT=true,
  SCENERY_QUERY_CACHE_SIZE=1024.

For each: cold start (launch to ``/healthz`` 200 and to the first search answered), the
worker's RSS after warm-up and whether torch / onnxruntime are mapped in it, then from a
keep-alive client: ``/api/search`` with texts never asked before (cache misses), the same texts
again (cache hits), ``/api/images/<id>/similar`` on random gallery images, ``POST
/api/search/image`` with the sample photos in turn, and ``/api/images``. No SCENERY_* variable
of the calling shell is used. ``--quick``: tiny-test model, 2,000 images, 5 requests per
endpoint (10 image searches): a smoke run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._api_gallery import Gallery, prepare, space_of
from bench._api_measure import BY_IMAGE, ENDPOINTS, SEARCH_MISS, PathResult, measure
from bench._api_server import Server
from bench._photos import PHOTOS
from scenery.config import Settings, load_settings
from scenery.context import Context
from scenery.models import Image, ImageStatus

PATHS = {
    "old": {
        "SCENERY_CLIP_RUNTIME": "torch",
        "SCENERY_CLIP_SHORT_CONTEXT": "false",
        "SCENERY_QUERY_CACHE_SIZE": "0",
    },
    "new": {"SCENERY_CLIP_SHORT_CONTEXT": "true", "SCENERY_QUERY_CACHE_SIZE": "1024"},
}
TARGET_MISS_MS = 25.0
TARGET_RATIO = 3.0
TARGET_IMAGE_MS = 120.0
# What a server's first start does once per data dir (and later starts need not): make the
# ONNX export, register the text query shift and save the snapshot with it (web.warm_up); then
# the same calls again, which raise where the warm-up only logs.
PRIME = """
from PIL import Image
from scenery.config import load_settings
from scenery.context import Context
from web import warm_up
ctx = Context(load_settings())
warm_up(ctx)
ctx.embedder.encode_images([Image.new("RGB", (64, 64))])
ctx.index.use_text_shift(ctx.text_queries.shift)
ctx.close()
"""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; the 50th is the median (what every p50 here is)."""
    if q == 0.5:
        return statistics.median(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def path_envs(data_dir: Path, model: str, runtime: str) -> dict[str, dict[str, str]]:
    """Each path's full environment: this one without SCENERY_*, plus the path's settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_")}
    base |= {
        "SCENERY_DATA_DIR": str(data_dir),
        "SCENERY_CLIP_MODEL": model,
        "SCENERY_CLIP_PRETRAINED": "none",
    }
    envs = {name: base | extra for name, extra in PATHS.items()}
    envs["new"]["SCENERY_CLIP_RUNTIME"] = runtime
    return envs


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a server started with ``env`` reads (this process has no SCENERY_*)."""
    prefix = "SCENERY_"
    return load_settings(
        **{k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    )


def prime(env: dict[str, str]) -> float:
    """Do in a separate process with ``env`` what a first start does once (``PRIME``), so
    that the servers' cold starts are the ones every later restart has; its seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PRIME], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"priming the model and index failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def snapshots(data_dir: Path) -> dict[str, str]:
    """Each index folder's current snapshot name."""
    return {p.parent.name: p.read_text() for p in (data_dir / "index").glob("*/CURRENT")}


def sample_ids(gallery: Gallery, settings: Settings, n: int) -> list[int]:
    """``n`` random published image ids (a fixed draw)."""
    ctx = Context(settings)
    try:
        with ctx.sessions() as session:
            ids = list(
                session.scalars(select(Image.id).where(Image.status == ImageStatus.PUBLISHED))
            )
    finally:
        ctx.close()
    if len(ids) != gallery.images:
        raise SystemExit(f"the data dir has {len(ids)} published images, not {gallery.images}")
    return random.Random(11).sample(ids, min(n, len(ids)))


def row(name: str, old: list[float], new: list[float]) -> str:
    figures = [percentile(t, q) for t in (old, new) for q in (0.5, 0.9, 0.99)]
    ratio = statistics.median(old) / statistics.median(new)
    return f"{name:32} {len(old):5d} " + " ".join(f"{f:8.2f}" for f in figures) + f" {ratio:8.2f}"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(args: argparse.Namespace, gallery: Gallery, results: dict[str, PathResult]) -> None:
    old, new = results["old"], results["new"]
    print(
        f"model {args.model}, {old.gallery} images in the gallery (/api/images total; new path: "
        f"{new.gallery}), {gallery.dim}-d, gunicorn 1 worker, keep-alive client, same machine"
    )
    for name, extra in path_envs(gallery.data_dir, args.model, args.runtime).items():
        print(f"{name} path: " + " ".join(f"{k}={extra[k]}" for k in PATHS["old"]))
    print()
    head = " ".join(f"{p + ' ' + q:>8}" for p in ("old", "new") for q in ("p50", "p90", "p99"))
    print(f"{'endpoint (ms)':32} {'n':>5} {head}  old/new p50")
    for name in ENDPOINTS:
        print(row(name, old.times[name], new.times[name]))
    print()
    for name, result in results.items():
        memory = result.memory
        print(
            f"{name} worker RSS after warm-up: {memory.rss_mib:.1f} MiB (torch loaded: "
            f"{'yes' if memory.torch else 'no'}, onnxruntime loaded: "
            f"{'yes' if memory.onnxruntime else 'no'})"
        )
    for name, result in results.items():
        print(
            f"{name} cold start: /healthz 200 after {result.healthy_s:.2f} s, first search "
            f"answered after {result.first_search_s:.2f} s"
        )
    print(
        f"1-minute load average at launch: old {old.load_average:.2f}, new "
        f"{new.load_average:.2f} ({os.cpu_count()} CPUs; other work on the machine skews both)"
    )
    miss = statistics.median(new.times[SEARCH_MISS])
    ratio = statistics.median(old.times[SEARCH_MISS]) / miss
    image = statistics.median(new.times[BY_IMAGE])
    print(
        f"new /api/search p50 on cache misses: {miss:.1f} ms (target <= {TARGET_MISS_MS:g} ms): "
        f"{verdict(miss <= TARGET_MISS_MS)}"
    )
    print(
        f"ratio old/new /api/search misses p50: {ratio:.2f}x (target >= {TARGET_RATIO:g}x): "
        f"{verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"new POST /api/search/image p50: {image:.1f} ms (target <= {TARGET_IMAGE_MS:g} ms): "
        f"{verdict(image <= TARGET_IMAGE_MS)}"
    )


def run(args: argparse.Namespace, data_dir: Path, logs: Path) -> None:
    envs = path_envs(data_dir, args.model, args.runtime)
    settings = {name: settings_of(env) for name, env in envs.items()}
    started = time.perf_counter()
    gallery = prepare([settings["old"], settings["new"]], args.images, envs["old"])
    if gallery.reused:
        print(f"gallery: reused {data_dir} ({gallery.images} images, {', '.join(gallery.spaces)})")
    else:
        print(
            f"gallery: built {gallery.images} images ({gallery.photos} sample photos imported, "
            f"the rest synthetic) in {time.perf_counter() - started:.1f} s (rows "
            f"{gallery.insert_seconds:.1f} s, index {gallery.index_seconds:.1f} s; "
            f"{', '.join(gallery.spaces)})"
        )
    primed: dict[str, float] = {}
    for name in ("new", "old"):  # one per vector space: the shift is the space's, not the path's
        if name == "new" or space_of(settings["old"]) != space_of(settings["new"]):
            primed[name] = prime(envs[name])
    print(
        "first start done once before timing (ONNX export, text query shift saved with the "
        "snapshot): " + ", ".join(f"{name} path {secs:.1f} s" for name, secs in primed.items())
    )
    ids = sample_ids(gallery, settings["old"], max(args.requests, 16))
    results = {}
    for name in ("old", "new"):
        before = snapshots(data_dir)
        with Server(envs[name], logs / f"{name}.log") as server:
            results[name] = measure(server, args.requests, ids)
        if snapshots(data_dir) != before:
            print(f"note: the {name} path's server saved a new index snapshot while timed")
    print()
    report(args, gallery, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, help="gallery size (default 100,000; quick 2,000)")
    parser.add_argument("--model", help="CLIP model (default ViT-B-32; quick tiny-test)")
    parser.add_argument(
        "--runtime", default="onnx", choices=["torch", "onnx", "onnx-int8"], help="new path's"
    )
    parser.add_argument(
        "--requests", type=int, help="per endpoint, at most ~1,000 (default 100; quick 5)"
    )
    parser.add_argument("--data-dir", type=Path, help="build the gallery here once, then reuse it")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny-test, 2,000 images")
    args = parser.parse_args()
    args.images = args.images or (2_000 if args.quick else 100_000)
    args.model = args.model or ("tiny-test" if args.quick else "ViT-B-32")
    args.requests = args.requests or (5 if args.quick else 100)
    for name in [k for k in os.environ if k.startswith("SCENERY_")]:
        del os.environ[name]  # the settings built here must be the servers' own
    if not PHOTOS.is_dir():
        raise SystemExit(f"no sample photos in {PHOTOS}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = (args.data_dir or Path(tmp) / "data").resolve()
        run(args, data_dir, Path(tmp))


if __name__ == "__main__":
    main()
