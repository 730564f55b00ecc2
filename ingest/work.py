"""One candidate's work before the model: download, exact-duplicate check, decode, hash.

Runs on worker threads, a few batches ahead of the embedder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PIL import Image

from ingest.fetch import Fetcher, FetchFailed
from scenery.config import GRID_THUMB, Settings
from scenery.curation.watermark import DETAIL, detail_view
from scenery.errors import ImageRejected
from scenery.imaging import decode, encode_thumbnail, perceptual_hashes, thumbnail
from scenery.models import Candidate
from scenery.storage import Storage

WORK_EDGE = GRID_THUMB  # decode large JPEGs at the DCT scale just above what filters look at


@dataclass(frozen=True)
class Job:
    """A pending candidate, detached from its database session."""

    candidate_id: int
    url: str
    fullname: str
    subreddit: str
    title: str
    author: str | None
    permalink: str
    created_at: datetime

    @classmethod
    def of(cls, candidate: Candidate) -> Job:
        post = candidate.post
        return cls(
            candidate.id,
            candidate.url,
            post.fullname,
            post.subreddit,
            post.title,
            post.author,
            post.permalink,
            post.created_at,
        )


@dataclass
class Failed:
    job: Job
    code: str
    reason: str
    retryable: bool
    sha256: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Duplicate:
    job: Job
    sha256: str
    image_id: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Prepared:
    job: Job
    sha256: str
    data: bytes
    extension: str
    format: str
    width: int
    height: int
    small: Image.Image
    detail: Image.Image | None  # the watermark detector's 448x448 view, when it runs
    small_jpeg: bytes
    phash: str
    mirrored_phash: str
    timings: dict[str, float] = field(default_factory=dict)


def prepare(
    job: Job,
    fetcher: Fetcher,
    downloads: Path,
    settings: Settings,
    stored_sha: Callable[[str], int | None],
    storage: Storage,
    *,
    detail: bool = False,
) -> Prepared | Failed | Duplicate:
    """Download and decode one candidate; a bad file becomes a Failed with its reason."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        fetched = fetcher.fetch(job.url, downloads)
    except FetchFailed as exc:
        return Failed(job, exc.code, str(exc), exc.retryable, timings=timings)
    finally:
        timings["download"] = time.perf_counter() - started
    data = fetched.path.read_bytes()
    fetched.path.unlink(missing_ok=True)
    match = stored_sha(fetched.sha256)
    if match is not None:  # decided in the main thread as an exact duplicate; no decoding
        return Duplicate(job, fetched.sha256, match, timings)
    started = time.perf_counter()
    try:
        edge = DETAIL if detail else WORK_EDGE
        decoded = decode(data, settings.max_image_pixels, edge=edge)
    except ImageRejected as exc:
        return Failed(job, "undecodable", exc.reason, False, fetched.sha256, timings)
    small = thumbnail(decoded.image, GRID_THUMB)
    timings["decode + thumbnail"] = time.perf_counter() - started
    started = time.perf_counter()
    phash, mirrored_phash = perceptual_hashes(small)
    prepared = Prepared(
        job=job,
        sha256=fetched.sha256,
        data=data,
        extension=decoded.extension,
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        small=small,
        detail=detail_view(decoded.image) if detail else None,
        small_jpeg=encode_thumbnail(small),
        phash=phash,
        mirrored_phash=mirrored_phash,
        timings=timings,
    )
    # Content-addressed files, written here to overlap the disk's fsyncs with the embedder;
    # a crash before the decision commits leaves orphans that `scenery doctor --fix` removes.
    storage.save_original(prepared.sha256, prepared.extension, data)
    storage.save_thumbnail(prepared.sha256, GRID_THUMB, prepared.small_jpeg)
    timings["hash + encode + write"] = time.perf_counter() - started
    return prepared
