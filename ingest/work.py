"""One candidate's work before the model: download, exact-duplicate check, then the shared
intake (``scenery.intake``): decode, hash, files.

Runs on worker threads, a few batches ahead of the embedder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from scenery.config import GRID_THUMB, Settings
from scenery.curation.watermark import DETAIL, detail_view
from scenery.errors import ImageRejected
from scenery.fetch import Fetcher, FetchFailed
from scenery.imaging import ImageLimits
from scenery.intake import StoredFile, store_file
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
    retry_after: float | None = None  # the wait the host asked for, when it asked


@dataclass
class Duplicate:
    job: Job
    sha256: str
    image_id: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Prepared:
    """A downloaded candidate whose files are stored (``scenery.intake``), ready to embed."""

    job: Job
    file: StoredFile
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return self.file.sha256


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
    """Download and store one candidate; a bad file becomes a Failed with its reason.

    ``detail``: make the watermark detector's 448 px view. The OCR's larger view is not made
    here: the screening decodes it again for the candidates the cheap filters let through."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        fetched = fetcher.fetch(job.url, downloads)
    except FetchFailed as exc:
        return Failed(
            job, exc.code, str(exc), exc.retryable, timings=timings, retry_after=exc.retry_after
        )
    finally:
        timings["download"] = time.perf_counter() - started
    data = fetched.path.read_bytes()
    fetched.path.unlink(missing_ok=True)
    match = stored_sha(fetched.sha256)
    if match is not None:  # decided in the main thread as an exact duplicate; no decoding
        return Duplicate(job, fetched.sha256, match, timings)
    try:
        # Files are written here, to overlap the disk's fsyncs with the embedder.
        stored = store_file(
            data,
            fetched.sha256,
            storage,
            ImageLimits.from_settings(settings),
            edge=DETAIL if detail else WORK_EDGE,
            detail=detail_view if detail else None,
            timings=timings,
        )
    except ImageRejected as exc:
        return Failed(job, "undecodable", exc.reason, False, fetched.sha256, timings)
    return Prepared(job, stored, timings)
