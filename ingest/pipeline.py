"""The ingest pipeline: list, resolve, download, decode, hash, embed, filter, decide, store, index.

Every post and candidate is committed before its files are fetched, and each decision is
committed together with the image row it creates, so a run killed at any point resumes: posts
already decided are skipped, undecided candidates are picked up again, and files are
content-addressed (a rewrite is harmless; ``scenery doctor`` finds any orphan).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

import numpy as np
from sqlalchemy.exc import IntegrityError

from ingest.fetch import Fetcher
from ingest.reddit import BadListingRequest, ListingFailed, Post, RedditClient
from ingest.resolve import Resolver
from ingest.state import (
    MAX_ATTEMPTS,
    add_candidates,
    decide_candidate,
    decided_url,
    finish_post_if_done,
    known_posts,
    pending_candidates,
    record_post,
)
from ingest.summary import IngestSummary
from ingest.work import Duplicate, Failed, Job, Prepared, prepare
from scenery.context import Context
from scenery.curation.duplicates import (
    ClipDuplicate,
    ExactDuplicate,
    HashBank,
    PerceptualDuplicate,
    exact_duplicate,
)
from scenery.curation.rules import ImageRules
from scenery.curation.verdicts import Decision, Facts, Filter, FilterResult, decide
from scenery.db import transaction
from scenery.library import add_embedding, find_by_sha, set_status
from scenery.models import Candidate, CandidateState, Image, ImageStatus, PostOutcome

log = logging.getLogger(__name__)

IMAGE_STATUS = {
    Decision.PUBLISH: ImageStatus.PUBLISHED,
    Decision.QUEUE: ImageStatus.QUEUED,
    Decision.REJECT: ImageStatus.REJECTED,
}
CANDIDATE_STATE = {
    Decision.PUBLISH: CandidateState.PUBLISHED,
    Decision.QUEUE: CandidateState.QUEUED,
    Decision.REJECT: CandidateState.REJECTED,
}


class Ingest:
    """One ingest run over some subreddits."""

    def __init__(
        self,
        ctx: Context,
        reddit: RedditClient,
        resolver: Resolver,
        fetcher: Fetcher,
        *,
        on_progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.reddit = reddit
        self.resolver = resolver
        self.fetcher = fetcher
        self.progress = on_progress or (lambda _stage, _n: None)
        self.summary = IngestSummary()
        self.downloads = ctx.settings.root / "tmp" / "downloads"
        self._run_shas: dict[str, int] = {}

    # -- list and resolve ---------------------------------------------------------------------

    def run(
        self,
        subreddits: Sequence[str],
        sort: str = "new",
        time_filter: str | None = None,
        limit: int = 100,
        dry_run: bool = False,
    ) -> IngestSummary:
        """Ingest the listings, then decide every pending candidate."""
        for subreddit in subreddits:
            started = time.perf_counter()
            try:
                posts = self.reddit.listing(subreddit, sort, time_filter, limit)
                for batch in _batched(posts, 100):
                    self._collect(batch, dry_run)
                self.summary.listings_ok += 1
            except (ListingFailed, BadListingRequest) as exc:
                log.error("listing r/%s failed: %s", subreddit, exc)
                self.summary.errors.append(str(exc))
            self.summary.add_time("list + resolve", time.perf_counter() - started)
        if not dry_run:
            self.process_pending()
        return self.summary

    def _collect(self, posts: list[Post], dry_run: bool) -> None:
        self.summary.posts_seen += len(posts)
        with self.ctx.sessions() as session:
            known = known_posts(session, [p.fullname for p in posts])
        for post in posts:
            outcome = known.get(post.fullname)
            if outcome in (PostOutcome.DONE, PostOutcome.SKIPPED):
                self.summary.posts_known += 1
                continue
            resolution = self.resolver.resolve(post)
            self.summary.images_found += len(resolution.images)
            if resolution.skipped:
                self.summary.skipped[resolution.skipped] += 1
            self.progress("posts", 1)
            if dry_run:
                continue
            with transaction(self.ctx.sessions) as session:
                row = record_post(session, post)
                if resolution.skipped or not resolution.images:
                    row.outcome = PostOutcome.SKIPPED
                    row.reason = resolution.skipped or "no image"
                else:
                    add_candidates(session, row, resolution.images)

    # -- download, decide, store --------------------------------------------------------------

    def process_pending(self) -> None:
        """Download and decide every undecided candidate, in batches."""
        self.downloads.mkdir(parents=True, exist_ok=True)
        with self.ctx.sessions() as session:
            jobs, known = [], []
            for candidate in pending_candidates(session):
                earlier = decided_url(session, candidate.url, candidate.id)
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
        filters = self._filters(bank)
        for batch in self._prepared_batches(jobs):
            ready = [item for item in batch if isinstance(item, Prepared)]
            for item in batch:
                if isinstance(item, Failed):
                    self._record_failure(item)
                elif isinstance(item, Duplicate):
                    self._record_duplicate(item)
            if ready:
                started = time.perf_counter()
                vectors = self.ctx.embedder.encode_images([p.small for p in ready])
                self.summary.add_time("embed", time.perf_counter() - started)
                started = time.perf_counter()
                for item, vector in zip(ready, vectors, strict=True):
                    self._decide_and_store(item, vector, filters, bank)
                self.summary.add_time("filter + store", time.perf_counter() - started)
            self.progress("candidates", len(batch))
        if self.summary.published:
            self.ctx.index.save()

    def _filters(self, bank: HashBank) -> list[Filter]:
        settings = self.ctx.settings
        return [
            ExactDuplicate(self._stored_sha),
            ImageRules.from_settings(settings),
            PerceptualDuplicate(bank, settings.phash_max_distance),
            ClipDuplicate(
                self._nearest_published,
                settings.clip_duplicate_similarity,
                settings.clip_duplicate_borderline,
            ),
        ]

    def _stored_sha(self, sha256: str) -> int | None:
        """The image already holding these bytes: stored this run, or in the database.

        Worker threads call it too: reading the run's dict while the main thread adds to it is
        safe, and each call opens its own session."""
        if sha256 in self._run_shas:
            return self._run_shas[sha256]
        with self.ctx.sessions() as session:
            return find_by_sha(session, [sha256]).get(sha256)

    def _nearest_published(self, vector: np.ndarray) -> tuple[int, float] | None:
        ids, scores = self.ctx.index.index.query(vector, k=1, ef=self.ctx.settings.index_ef_search)
        return (int(ids[0]), float(scores[0])) if len(ids) else None

    def _prepared_batches(
        self, jobs: Sequence[Job]
    ) -> Iterator[list[Prepared | Failed | Duplicate]]:
        """Prepare jobs on worker threads, a couple of batches ahead of the embedder."""
        size = self.ctx.settings.clip_batch_size
        workers = self.ctx.settings.download_concurrency
        settings, fetcher, downloads = self.ctx.settings, self.fetcher, self.downloads

        def work(job: Job) -> Prepared | Failed | Duplicate:
            return prepare(job, fetcher, downloads, settings, self._stored_sha, self.ctx.storage)

        with ThreadPoolExecutor(workers, thread_name_prefix="prepare") as pool:
            queue: deque[Future[Prepared | Failed | Duplicate]] = deque()
            todo = iter(jobs)
            for job in islice(todo, 2 * size):
                queue.append(pool.submit(work, job))
            while queue:
                batch = []
                while queue and len(batch) < size:
                    batch.append(queue.popleft().result())
                    following = next(todo, None)
                    if following is not None:
                        queue.append(pool.submit(work, following))
                for item in batch:
                    for stage, seconds in item.timings.items():
                        self.summary.add_time(stage, seconds)
                yield batch

    def _record_duplicate(self, item: Duplicate) -> None:
        """A download whose bytes are already stored: rejected without decoding."""
        result = exact_duplicate(item.image_id)
        self._store_decision_only(item.job, item.sha256, [result], result)

    def _record_failure(self, item: Failed) -> None:
        with transaction(self.ctx.sessions) as session:
            candidate = session.get(Candidate, item.job.candidate_id)
            if candidate is None or candidate.state != CandidateState.PENDING:
                return
            candidate.attempts += 1
            if item.retryable and candidate.attempts < MAX_ATTEMPTS:
                self.summary.retry_later += 1
                return
            decide_candidate(
                candidate, CandidateState.FAILED, item.reason, item.code, sha256=item.sha256
            )
            finish_post_if_done(session, candidate.post)
        self.summary.failed[item.code] += 1

    def _decide_and_store(
        self, item: Prepared, vector: np.ndarray, filters: list[Filter], bank: HashBank
    ) -> None:
        facts = Facts(
            item.sha256,
            item.width,
            item.height,
            item.phash,
            item.mirrored_phash,
            vector,
            item.small,
        )
        results = [f.check(facts) for f in filters]
        decision, deciding = decide(results)
        exact = next((r for r in results if r.code == "duplicate_exact"), None)
        if exact is not None:
            self._store_decision_only(item.job, item.sha256, results, exact)
            return
        try:
            image_id = self._insert(item, vector, decision, deciding, results)
        except IntegrityError:  # another process stored the same file meanwhile
            duplicate = exact_duplicate(self._stored_sha(item.sha256))
            self._store_decision_only(item.job, item.sha256, [duplicate], duplicate)
            return
        self._run_shas[item.sha256] = image_id
        if decision == Decision.PUBLISH:
            self.ctx.index.add([image_id], vector[None, :])
        if decision in (Decision.PUBLISH, Decision.QUEUE):
            bank.add(image_id, item.phash)
        self.summary.count(decision, deciding)

    def _insert(
        self,
        item: Prepared,
        vector: np.ndarray,
        decision: Decision,
        deciding: list[FilterResult],
        results: list[FilterResult],
    ) -> int:
        job = item.job
        filters_json = [r.as_json() for r in results]
        reason = "; ".join(r.reason for r in deciding) or None
        code = deciding[0].code if deciding else None
        matched = next((r.matched_image_id for r in deciding if r.matched_image_id), None)
        with transaction(self.ctx.sessions) as session:
            image = Image(
                sha256=item.sha256,
                path=self.ctx.storage.original_relpath(item.sha256, item.extension),
                width=item.width,
                height=item.height,
                bytes=len(item.data),
                format=item.format,
                phash=item.phash,
                source="reddit",
                source_name=job.url.rsplit("/", 1)[-1][:200],
                reddit_subreddit=job.subreddit,
                reddit_post_id=job.fullname,
                reddit_permalink=job.permalink,
                reddit_author=job.author,
                reddit_title=job.title,
                reddit_created_at=job.created_at,
                curation={"decision": decision.value, "reason": reason, "filters": filters_json},
            )
            session.add(image)
            set_status(session, image, IMAGE_STATUS[decision])
            add_embedding(session, image, self.ctx.embedder.name, vector)
            session.flush()
            candidate = session.get(Candidate, job.candidate_id)
            assert candidate is not None
            decide_candidate(
                candidate,
                CANDIDATE_STATE[decision],
                reason,
                code,
                filters=filters_json,
                sha256=item.sha256,
                image_id=image.id,
                matched_image_id=matched,
            )
            finish_post_if_done(session, candidate.post)
            return image.id

    def _store_decision_only(
        self, job: Job, sha256: str, results: list[FilterResult], exact: FilterResult
    ) -> None:
        """Reject a candidate as a duplicate of a stored file: no image row of its own."""
        with transaction(self.ctx.sessions) as session:
            candidate = session.get(Candidate, job.candidate_id)
            assert candidate is not None
            decide_candidate(
                candidate,
                CandidateState.REJECTED,
                exact.reason,
                exact.code,
                filters=[r.as_json() for r in results],
                sha256=sha256,
                matched_image_id=exact.matched_image_id,
            )
            finish_post_if_done(session, candidate.post)
        self.summary.count(Decision.REJECT, [exact])


def _batched(items: Iterable[Post], size: int) -> Iterator[list[Post]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
