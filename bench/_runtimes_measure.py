"""What bench/runtimes.py measures of each CLIP runtime: query latency, image throughput, load
time, a fresh process's memory, and how far int8 (and fp32 ONNX) answers are from the others."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from scenery.embed import Embedder

VOCABULARY = (
    "mountain lake dawn misty forest river sunset snow peak desert canyon waterfall beach "
    "ocean waves storm clouds autumn leaves meadow flowers bridge city night lights old "
    "castle village road trail dog cat bird dragonfly reflection ice glacier valley fog "
    "rocks cliff island boat harbour lighthouse field wheat golden hour stars milky way "
    "aurora volcano dunes palm tree jungle moss stream pond sky rainbow red blue green"
)
WORDS = tuple(VOCABULARY.split())


def distinct_queries(count: int, seed: int) -> list[str]:
    """``count`` different queries of 1 to 8 words (lengths in turn, so every set is alike)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        query = " ".join(rng.sample(WORDS, 1 + len(out) % 8))
        if query not in seen:
            seen.add(query)
            out.append(query)
    return out


def percentile(values: Sequence[float], share: float) -> float:
    return float(np.percentile(np.asarray(values), share * 100))


@dataclass(frozen=True)
class Latency:
    p50: float
    p90: float


def text_latency(settings: dict[str, Embedder], rounds: int, per_round: int) -> dict[str, Latency]:
    """Per setting, the median over ``rounds`` of the p50 and p90 of one-query calls (ms).

    Every round gives each setting new queries and runs the settings in a rotated order, so a
    noisy neighbour falls on all of them alike."""
    names = list(settings)
    p50s: dict[str, list[float]] = {name: [] for name in names}
    p90s: dict[str, list[float]] = {name: [] for name in names}
    for embedder in settings.values():
        embedder.encode_text(distinct_queries(3, seed=-1))  # warm
    for r in range(rounds):
        queries = distinct_queries(per_round, seed=r)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times = []
            for query in queries:
                started = time.perf_counter()
                settings[name].encode_text([query])
                times.append((time.perf_counter() - started) * 1000)
            p50s[name].append(percentile(times, 0.5))
            p90s[name].append(percentile(times, 0.9))
    return {
        name: Latency(statistics.median(p50s[name]), statistics.median(p90s[name]))
        for name in names
    }


def image_rates(
    embedders: dict[str, Embedder], images: list[Image.Image], repeats: int, single: int
) -> dict[str, tuple[float, float]]:
    """Per runtime, images/s at batch 1 (``single`` images) and batch 32 (all), median of
    ``repeats`` rounds that alternate the runtimes."""
    names = list(embedders)
    ones: dict[str, list[float]] = {name: [] for name in names}
    batches: dict[str, list[float]] = {name: [] for name in names}
    for embedder in embedders.values():
        embedder.encode_images(images[:2])  # warm
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            embedder = embedders[name]
            ones[name].append(single / _seconds(partial(_one_by_one, embedder, images[:single])))
            batches[name].append(len(images) / _seconds(partial(embedder.encode_images, images)))
    return {
        name: (statistics.median(ones[name]), statistics.median(batches[name])) for name in names
    }


def _one_by_one(embedder: Embedder, images: list[Image.Image]) -> None:
    for image in images:
        embedder.encode_images([image])


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def load_seconds(make: Callable[[], Embedder]) -> tuple[float, Embedder]:
    """Seconds to load a new embedder (the export already made), and the embedder."""
    embedder = make()
    return _seconds(embedder.load), embedder


@dataclass(frozen=True)
class Process:
    """A fresh process that loaded the embedder and embedded one image and one text."""

    seconds: float  # from before it was started until it had both embeddings
    rss_mib: float
    torch: bool


def fresh_process(script: Path, runtime: str, model: str, models_dir: Path) -> Process:
    """Run ``script --child`` (see ``child_report``) and read what it reports."""
    started = time.perf_counter()  # CLOCK_MONOTONIC: the child's clock reads the same
    done = subprocess.run(
        [sys.executable, str(script), "--child", runtime, "--model", model,
         "--models-dir", str(models_dir)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the {runtime} child process failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Process(report["ready"] - started, report["rss_kib"] / 1024, report["torch"])


def child_report(embedder: Embedder, photo: Path) -> str:
    """Load, embed one photo and one text, and report the time, VmRSS and whether torch came."""
    embedder.load()
    embedder.encode_images([Image.open(photo)])
    embedder.encode_text(["a misty lake at dawn"])
    ready = time.perf_counter()
    status = Path("/proc/self/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return json.dumps({"ready": ready, "rss_kib": rss, "torch": "torch" in sys.modules})


def top_k(scores: np.ndarray, k: int) -> list[set[int]]:
    """Each row's ``k`` best columns (exact)."""
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [set(row.tolist()) for row in best]


def overlap(
    queries_a: np.ndarray, items_a: np.ndarray, queries_b: np.ndarray, items_b: np.ndarray,
    k: int = 10, exclude_self: bool = False,
) -> np.ndarray:  # fmt: skip
    """Per query, the share of space a's exact top ``k`` that space b's top ``k`` holds too.

    With ``exclude_self`` the queries are the items themselves, and each is left out of its
    own results."""
    scores_a, scores_b = queries_a @ items_a.T, queries_b @ items_b.T
    if exclude_self:
        np.fill_diagonal(scores_a, -np.inf)
        np.fill_diagonal(scores_b, -np.inf)
        k = min(k, items_a.shape[0] - 1)
    k = min(k, items_a.shape[0])
    pairs = zip(top_k(scores_a, k), top_k(scores_b, k), strict=True)
    return np.asarray([len(a & b) / k for a, b in pairs])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two sets of L2-normalised rows."""
    return (a * b).sum(axis=1)
