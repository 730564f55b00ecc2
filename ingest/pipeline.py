"""The ingest pipeline: list, resolve, download, decode, hash, embed, filter, decide, store, index.

Every post and candidate is committed before its files are fetched, and each decision is
committed together with the image row it creates, so a run killed at any point resumes: posts
already decided are skipped, undecided candidates are picked up again, and files are
content-addressed (a rewrite is harmless; ``scenery doctor`` finds any orphan).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ingest.record import Judged, load_candidates, record_failure, reject_as_copy, store_judged
from ingest.reddit import BadListingRequest, ListingFailed, Post, RedditClient
from ingest.resolve import Resolver
from ingest.state import (
    decided_urls,
    due_failed_posts,
    pending_candidates,
    record_posts,
    record_resolution,
    retry_due,
    settled_posts,
    waiting_candidates,
)
from ingest.summary import IngestSummary
from ingest.work import Duplicate, Failed, Job, Prepared, prepare
from scenery.batches import chunked
from scenery.context import Context
from scenery.curation.chain import model_filters, near_duplicate_filters
from scenery.curation.duplicates import (
    ExactDuplicate,
    HashBank,
    exact_duplicate,
)
from scenery.curation.ocr_watermark import decoded_text_view
from scenery.curation.rules import ImageRules
from scenery.curation.verdicts import (
    Decision,
    Facts,
    Filter,
    FilterResult,
    decide,
    is_expensive,
    rejected_by,
    run_cascade,
    run_filters,
    screen,
)
from scenery.db import exclusive, transaction
from scenery.fetch import Fetcher
from scenery.imaging import ImageLimits
from scenery.library import find_by_sha
from scenery.models import CandidateState, utcnow

log = logging.getLogger(__name__)
PREPARE_NICENESS = 10
DECIDE_LOCK = "ingest-decide"


@dataclass
class Screened:
    """An embedded batch whose expensive filters are under way on the screening thread."""

    ready: list[Prepared]
    facts: list[Facts]
    ran: Future[list[dict[str, FilterResult]]]  # per candidate: expensive results by filter
    seconds: defaultdict[str, float]  # the screening thread's own timings, added once done


class Ingest:
    """One ingest run over some subreddits."""

    def __init__(
        self,
        ctx: Context,
        reddit: RedditClient,
        resolver: Resolver,
        fetcher: Fetcher,
        *,
        downloads: Path,
        on_progress: Callable[[str, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.ctx = ctx
        self.reddit = reddit
        self.resolver = resolver
        self.fetcher = fetcher
        self.progress = on_progress or (lambda _stage, _n: None)
        self.should_stop = should_stop or (lambda: False)
        self.summary = IngestSummary()
        self.downloads = downloads  # this run's own folder: runs may work side by side
        self.subreddits: list[str] = []
        self._run_shas: dict[str, int] = {}
        self._resolved: set[str] = set()  # posts this run resolved (a failure waits a run)
        self._detail = False  # whether workers make the watermark detector's 448 px views
        self._text_edge = 0  # the long side of the OCR filter's view, when it runs

    # -- list and resolve ---------------------------------------------------------------------

    def run(
        self,
        subreddits: Sequence[str],
        sort: str = "new",
        time_filter: str | None = None,
        limit: int = 100,
        dry_run: bool = False,
    ) -> IngestSummary:
        """Ingest the listings, then decide every pending candidate of these subreddits."""
        self.subreddits = list(subreddits)
        for subreddit in subreddits:
            if self._stopping():
                return self.summary
            started = time.perf_counter()
            try:
                posts = self.reddit.listing(subreddit, sort, time_filter, limit)
                for batch in chunked(posts, 100):
                    self._collect(batch, dry_run)
                    if self._stopping():
                        return self.summary
                self.summary.listings_ok += 1
            except (ListingFailed, BadListingRequest) as exc:
                log.error("listing r/%s failed: %s", subreddit, exc)
                self.summary.errors.append(str(exc))
            self.summary.add_time("list + resolve", time.perf_counter() - started)
        if not self._stopping():
            self._retry_failed(dry_run)
        if not dry_run:
            self.process_pending()
        return self.summary

    def _stopping(self) -> bool:
        """Whether the run was asked to stop (worker shutdown, lease lost): it then ends at
        the next batch boundary, with everything decided so far committed."""
        if self.should_stop():
            self.summary.interrupted = True
        return self.summary.interrupted

    def _collect(self, posts: list[Post], dry_run: bool) -> None:
        self.summary.posts_seen += len(posts)
        with self.ctx.sessions() as session:
            settled = settled_posts(
                session, [p.fullname for p in posts], self.ctx.settings, utcnow()
            )
        self._resolve([post for post in posts if post.fullname not in settled], dry_run)
        self.summary.posts_known += sum(post.fullname in settled for post in posts)

    def _retry_failed(self, dry_run: bool) -> None:
        """Resolve again the failed posts of these feeds that are due (an image host's API
        that failed before, a missing key that is set now), listed or not."""
        with self.ctx.sessions() as session:
            due = due_failed_posts(session, self.subreddits, self.ctx.settings, utcnow())
        due = [post for post in due if post.fullname not in self._resolved]  # once a run
        for batch in chunked(due, 100):
            self._resolve(batch, dry_run)
            if self._stopping():
                return

    def _resolve(self, posts: list[Post], dry_run: bool) -> None:
        resolved = []
        for post in posts:  # network first (imgur and flickr APIs), then one short transaction
            resolution = self.resolver.resolve(post)
            self._resolved.add(post.fullname)
            self.summary.images_found += len(resolution.images)
            if resolution.retryable or resolution.needs:
                self.summary.retry_later += 1
            elif resolution.skipped:
                self.summary.skipped[resolution.skipped] += 1
            self.progress("posts", 1)
            resolved.append((post, resolution))
        if dry_run or not resolved:
            return
        settings = self.ctx.settings
        for attempt in range(3):
            try:
                with transaction(self.ctx.sessions) as session:
                    rows = record_posts(session, [post for post, _ in resolved])
                    new = {name for name, row in rows.items() if row in session.new}
                    now = utcnow()
                    for post, resolution in resolved:
                        row = rows[post.fullname]
                        # A known post is recorded again only when its retry is due: else
                        # another run recorded it meanwhile.
                        if post.fullname in new or retry_due(row, settings, now):
                            record_resolution(session, row, resolution, settings, now)
                return
            except IntegrityError:  # a concurrent run (another feed) recorded the same post
                if attempt == 2:
                    raise

    # -- download, decide, store --------------------------------------------------------------

    def process_pending(self) -> None:
        """Download and decide every undecided candidate, in batches."""
        self.downloads.mkdir(parents=True, exist_ok=True)
        with self.ctx.sessions() as session:
            jobs, known = [], []
            now = utcnow()
            pending = pending_candidates(session, self.subreddits, now=now)
            self.summary.retry_waiting = waiting_candidates(session, self.subreddits, now=now)
            decided = decided_urls(session, pending)
            for candidate in pending:
                earlier = decided.get(candidate.id)
                match = earlier and (earlier.image_id or earlier.matched_image_id)
                if earlier is not None and match:
                    # A repost of a file already judged: decided again without downloading it.
                    sha = earlier.sha256 or ""
                    known.append(Duplicate(Job.of(candidate), sha, match))
                else:
                    jobs.append(Job.of(candidate))
            bank = HashBank.load(session)
        for duplicate in known:
            self._record_duplicate(duplicate)
        self.progress("candidates-total", len(jobs))
        if jobs:
            self.ctx.embedder.load()  # a model that cannot load stops the run before any file
        filters = self._filters(bank)
        self._detail = any(f.name == "watermark" for f in filters)
        # The OCR filter reads a larger view, decoded again on the screening thread for the
        # candidates the cheap filters let through (a rejected one never pays for it).
        self._text_edge = max((int(getattr(f, "max_side", 0)) for f in filters), default=0)
        # Three stages overlap: the model embeds batch N on its thread, the expensive filters
        # (NSFW, watermark, OCR) look at batch N-1 on theirs, and this thread judges and
        # stores batch N-2 (torch and onnxruntime release the GIL while they compute).
        with (
            ThreadPoolExecutor(1, thread_name_prefix="embed") as model,
            ThreadPoolExecutor(1, thread_name_prefix="screen") as screener,
        ):
            embedding: tuple[list[Prepared], Future[np.ndarray]] | None = None
            screening: Screened | None = None
            for batch in self._prepared_batches(jobs):
                if self._stopping():
                    break
                for item in batch:
                    if isinstance(item, Failed):
                        self._record_failure(item)
                    elif isinstance(item, Duplicate):
                        self._record_duplicate(item)
                ready = [item for item in batch if isinstance(item, Prepared)]
                current = (ready, model.submit(self._embed, ready)) if ready else None
                if screening is not None:
                    self._store_batch(screening, filters, bank)
                # After the batch before is stored: its files count as duplicates here.
                screening = self._screen(*embedding, filters, screener) if embedding else None
                embedding = current
                self.progress("candidates", len(batch))
            if screening is not None:
                self._store_batch(screening, filters, bank)
            if embedding is not None:
                self._store_batch(self._screen(*embedding, filters, screener), filters, bank)
        if self.summary.published:
            self.ctx.index.save()

    def _embed(self, ready: list[Prepared]) -> np.ndarray:
        started = time.perf_counter()
        vectors = self.ctx.embedder.encode_images([p.file.small for p in ready])
        self.summary.add_time("embed", time.perf_counter() - started)
        return vectors

    def _screen(
        self,
        ready: list[Prepared],
        vectors: Future[np.ndarray],
        filters: list[Filter],
        screener: ThreadPoolExecutor,
    ) -> Screened:
        """Start the expensive filters on the candidates of an embedded batch that the cheap
        filters, as the run stands now, do not reject."""
        batch = self._facts(ready, vectors.result())
        cheap = [f for f in filters if not is_expensive(f.name)]
        alive = [i for i, facts in enumerate(batch) if not rejected_by(run_filters(cheap, facts))]
        seconds: defaultdict[str, float] = defaultdict(float)

        def expensive() -> list[dict[str, FilterResult]]:
            found = screen(filters, [batch[i] for i in alive], seconds)
            out: list[dict[str, FilterResult]] = [{} for _ in batch]
            for i, results in zip(alive, found, strict=True):
                out[i] = results
            return out

        return Screened(ready, batch, screener.submit(expensive), seconds)

    def _store_batch(self, screened: Screened, filters: list[Filter], bank: HashBank) -> None:
        """Filter, decide and store one screened batch in one transaction.

        Candidates are judged one after another, each against the run state the ones before
        it left (hash bank, index, stored hashes), so two copies in one batch are caught."""
        ran = screened.ran.result()
        for stage, seconds in screened.seconds.items():
            self.summary.add_time(stage, seconds)
        ready = screened.ready
        started = time.perf_counter()
        tagger = self.ctx.tagger
        vectors = [facts.vector for facts in screened.facts]
        tags = tagger.tags(np.stack(vectors)) if tagger and vectors else [[] for _ in ready]
        applied: list[tuple[Judged, int | None]] = []
        try:
            with transaction(self.ctx.sessions) as session:
                # Runs of other feeds decide at the same time (other workers, other machines):
                # one at a time, each judging against everything committed before it.
                exclusive(session, DECIDE_LOCK)
                self._catch_up(session, ready, bank)
                loaded = {
                    c.id: c
                    for c in load_candidates(session, [item.job.candidate_id for item in ready])
                }
                for item, facts, known, tagged in zip(
                    ready, screened.facts, ran, tags, strict=True
                ):
                    candidate = loaded.get(item.job.candidate_id)
                    if candidate is None or candidate.state != CandidateState.PENDING:
                        self.summary.decided_elsewhere += 1  # a concurrent run got there first
                        continue
                    judged = self._judge(item, facts, filters, known)
                    judged.tags = tagged
                    image_id = self._store(session, judged)
                    self._apply(judged, image_id, bank)
                    applied.append((judged, image_id))
        except Exception:  # nothing of this batch was committed: take back what it applied
            for judged, image_id in applied:
                self._unapply(judged, image_id, bank)
            raise
        for judged, _ in applied:
            self.summary.count(judged.decision, judged.deciding)
        self.summary.add_time("filter + store", time.perf_counter() - started)

    def _catch_up(self, session: Session, ready: list[Prepared], bank: HashBank) -> None:
        """Under the decide lock, let this run see what other runs committed since its batch
        was checked: stored files with these bytes, new perceptual hashes, new publications."""
        stored = find_by_sha(session, [item.sha256 for item in ready])
        self._run_shas.update(stored)
        bank.catch_up(session)
        self.ctx.index.refresh(force=True)

    def _filters(self, bank: HashBank) -> list[Filter]:
        return [
            # The database was asked when the file was downloaded; since then only this run
            # can have stored the same bytes.
            ExactDuplicate(self._run_shas.get),
            ImageRules.from_settings(self.ctx.settings),
            *near_duplicate_filters(self.ctx, bank),
            *model_filters(self.ctx),
        ]

    def _stored_sha(self, sha256: str) -> int | None:
        """The image already holding these bytes: stored this run, or in the database.

        Worker threads call it too: reading the run's dict while the main thread adds to it is
        safe, and each call opens its own session."""
        if sha256 in self._run_shas:
            return self._run_shas[sha256]
        with self.ctx.sessions() as session:
            return find_by_sha(session, [sha256]).get(sha256)

    def _prepared_batches(
        self, jobs: Sequence[Job]
    ) -> Iterator[list[Prepared | Failed | Duplicate]]:
        """Prepare jobs on worker threads, a couple of batches ahead of the embedder."""
        size = self.ctx.settings.clip_batch_size
        workers = self.ctx.settings.download_concurrency
        settings, fetcher, downloads = self.ctx.settings, self.fetcher, self.downloads

        def work(job: Job) -> Prepared | Failed | Duplicate:
            return prepare(
                job,
                fetcher,
                downloads,
                settings,
                self._stored_sha,
                self.ctx.storage,
                detail=self._detail,
            )

        with ThreadPoolExecutor(
            workers, thread_name_prefix="prepare", initializer=_yield_to_embedder
        ) as pool:
            queue: deque[Future[Prepared | Failed | Duplicate]] = deque()
            todo = iter(jobs)
            for job in islice(todo, 2 * size):
                queue.append(pool.submit(work, job))
            # A short first batch sets the model going sooner; it then stays ahead of it.
            limit = max(1, size // 4)
            try:
                while queue:
                    batch: list[Prepared | Failed | Duplicate] = []
                    while queue and len(batch) < limit:
                        started = time.perf_counter()
                        batch.append(queue.popleft().result())
                        self.summary.add_time("wait for downloads", time.perf_counter() - started)
                        following = next(todo, None)
                        if following is not None:
                            queue.append(pool.submit(work, following))
                    for item in batch:
                        for stage, seconds in item.timings.items():
                            self.summary.add_time(stage, seconds)
                    limit = size
                    yield batch
            finally:  # a run that stops early does not wait for downloads nobody will read
                for future in queue:
                    future.cancel()

    def _record_duplicate(self, item: Duplicate) -> None:
        """A download whose bytes are already stored: rejected without decoding."""
        result = exact_duplicate(item.image_id)
        with transaction(self.ctx.sessions) as session:
            reject_as_copy(session, item.job, item.sha256, [result], result)
        self.summary.count(Decision.REJECT, [result])

    def _record_failure(self, item: Failed) -> None:
        with transaction(self.ctx.sessions) as session:
            final = record_failure(session, item, self.ctx.settings, utcnow())
        if final:
            self.summary.failed[item.code] += 1
        elif final is not None:
            self.summary.retry_later += 1

    def _facts(self, ready: list[Prepared], vectors: np.ndarray) -> list[Facts]:
        """Each candidate's facts, from its files and its embedding."""
        limits = ImageLimits.from_settings(self.ctx.settings)
        side = self._text_edge
        return [
            Facts(
                item.sha256,
                item.file.width,
                item.file.height,
                item.file.phash,
                item.file.mirrored_phash,
                vector,
                item.file.small,
                item.file.detail,
                partial(decoded_text_view, item.file.data, limits, side) if side else None,
            )
            for item, vector in zip(ready, vectors, strict=True)
        ]

    def _judge(
        self,
        item: Prepared,
        facts: Facts,
        filters: list[Filter],
        known: dict[str, FilterResult],
    ) -> Judged:
        """Every filter's verdict, cheapest first, the expensive ones from the screening (or
        run now, should the cheap ones no longer reject it); then the decision."""
        results = run_cascade(filters, facts, self.summary.seconds, known)
        decision, deciding = decide(results)
        return Judged(item, facts.vector, decision, deciding, results)

    def _store(self, session: Session, judged: Judged) -> int | None:
        return store_judged(session, judged, self.ctx.storage, self.ctx.embedder.name)

    def _apply(self, judged: Judged, image_id: int | None, bank: HashBank) -> None:
        """Let the next candidates see this one: stored hashes, the index, the hash bank."""
        if image_id is None:
            return
        self._run_shas[judged.item.sha256] = image_id
        if judged.decision == Decision.PUBLISH:
            self.ctx.index.add([image_id], judged.vector[None, :])
        if judged.decision in (Decision.PUBLISH, Decision.QUEUE):
            bank.add(image_id, judged.item.file.phash)

    def _unapply(self, judged: Judged, image_id: int | None, bank: HashBank) -> None:
        """Take back what ``_apply`` did for a decision whose transaction rolled back."""
        if image_id is None:
            return
        self._run_shas.pop(judged.item.sha256, None)
        if judged.decision == Decision.PUBLISH:
            self.ctx.index.remove([image_id])
        bank.remove(image_id)


def _yield_to_embedder() -> None:
    """Lower this worker thread's CPU priority, so it takes the time the embedder leaves idle.

    The model's parallel kernels wait for their slowest thread: a preparing thread that
    preempts one of them stalls all of them (measured on 2 cores with ViT-B-32: ratio of
    pipeline to embedding alone 0.73 at equal priority)."""
    # Not Linux, or not permitted: equal priority still works.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PREPARE_NICENESS)
