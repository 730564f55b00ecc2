"""Two ingests of different feeds at the same moment, each holding a near-duplicate of the same
new photo: exactly one copy is published, on SQLite and on PostgreSQL.

Each ingest has a context of its own (its own engine, index and hash bank), as two worker
processes would; they meet only in the database.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from ingest.runner import run_ingest
from scenery.context import Context
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState
from scenery.models import Post as PostRow
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post
from tests.helpers import resized_copy

ROUNDS = 6


def test_concurrent_ingests_publish_one_of_two_near_duplicates(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path, database_url=db_url, min_pixels=100_000, nsfw_nudenet=False
        )
        contexts = [Context(settings, embedder=tiny_embedder) for _ in range(2)]
        contexts[0].migrate()
        outcomes = []
        for n in range(ROUNDS):
            photo = photos[n]
            original = fake.add_photo(f"/img/a{n}.jpg", photo)
            copy = fake.add_file(f"/img/b{n}.jpg", resized_copy(photo), "image/jpeg")
            fake.add_posts("Alpine", [make_post(f"a{n}", subreddit="Alpine", url=original)])
            fake.add_posts("Lakes", [make_post(f"b{n}", subreddit="Lakes", url=copy)])
            start = threading.Barrier(2)
            errors: list[BaseException] = []

            def ingest(
                ctx: Context,
                subreddit: str,
                start: threading.Barrier = start,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    start.wait()
                    run_ingest(ctx, [subreddit], limit=50)
                except BaseException as exc:  # reported below, on the test's thread
                    errors.append(exc)

            threads = [
                threading.Thread(target=ingest, args=(contexts[0], "Alpine")),
                threading.Thread(target=ingest, args=(contexts[1], "Lakes")),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not errors, errors
            with contexts[0].sessions() as session:
                states = dict(
                    session.execute(
                        select(PostRow.fullname, Candidate.state)
                        .join(Candidate.post)
                        .where(PostRow.fullname.in_([f"t3_a{n}", f"t3_b{n}"]))
                    ).all()
                )
            outcomes.append(states)
            published = [name for name, state in states.items() if state == "published"]
            assert len(states) == 2 and len(published) == 1, (n, states)
            other = next(state for name, state in states.items() if name not in published)
            assert other in (CandidateState.REJECTED, CandidateState.QUEUED), (n, states)
        for ctx in contexts:
            ctx.close()
