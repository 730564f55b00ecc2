"""The worker's ingest job: run a claimed subscription under its lease. The CLI hands it to
the worker (``scenery worker``); the core only names the job."""

from __future__ import annotations

import logging

from ingest.runner import Feed, run_claimed
from scenery.context import Context
from scenery.models import Subscription
from scenery.queue import Handler, Job
from scenery.schedule import Claim
from scenery.worker import Worker

log = logging.getLogger(__name__)


def ingest_handlers(ctx: Context, worker: Worker) -> dict[Job, Handler]:
    """The worker's ingest job: run a claimed subscription under its lease."""

    def ingest_subscription(subscription_id: int, token: str) -> None:
        with ctx.sessions() as session:
            sub = session.get(Subscription, subscription_id)
            if sub is None:
                log.info("subscription %s is gone; nothing to run", subscription_id)
                return
            feed = Feed((sub.subreddit,), sub.listing, sub.time_filter, sub.post_limit)
        claim = Claim(token, (subscription_id,))
        run_claimed(ctx, claim, feed, worker.id, stop=worker.stopping)

    return {Job.INGEST: ingest_subscription}
