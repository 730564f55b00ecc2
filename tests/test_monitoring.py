"""Monitoring data and explanations, read from stored candidates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from scenery.context import Context
from scenery.curation.explain import explain
from scenery.curation.monitoring import agreement, daily_counts, filter_scores
from scenery.db import transaction
from scenery.errors import NotFound
from scenery.models import Candidate, CandidateState, Post, PostOutcome

DAY1 = datetime(2026, 11, 20, 10, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def result(name: str, verdict: str, score: float | None, code: str = "ok") -> dict[str, Any]:
    return {"filter": name, "verdict": verdict, "score": score, "reason": "r", "code": code}


def add(
    session: Session,
    n: int,
    state: CandidateState,
    decided_at: datetime,
    filters: list[dict[str, Any]],
    code: str | None = None,
    review: str | None = None,
) -> Candidate:
    post = Post(
        fullname=f"t3_p{n}",
        subreddit="EarthPorn",
        title=f"<script>alert({n})</script> Post {n}",
        permalink=f"/r/EarthPorn/comments/p{n}/",
        created_at=DAY1,
        outcome=PostOutcome.DONE,
    )
    candidate = Candidate(
        key="0",
        url=f"https://i.redd.it/p{n}.jpg",
        url_hash=f"{n:064d}",
        state=state,
        reason_code=code,
        reason=code and f"because {code}",
        filters=filters,
        decided_at=decided_at,
        review=review,
    )
    post.candidates.append(candidate)
    session.add(post)
    session.flush()
    return candidate


@pytest.fixture
def decided(ctx: Context) -> dict[str, int]:
    ids = {}
    with transaction(ctx.sessions) as s:
        fit_pass = result("gallery_fit", "pass", 30.0)
        fit_fail = result("gallery_fit", "fail", -5.0, "off_topic")
        ids["published"] = add(
            s, 1, CandidateState.PUBLISHED, DAY1, [fit_pass], None, "approved"
        ).id
        add(s, 2, CandidateState.PUBLISHED, DAY2, [result("gallery_fit", "pass", 28.0)])
        ids["rejected"] = add(
            s, 3, CandidateState.REJECTED, DAY2, [fit_fail], "off_topic", "approved"
        ).id
        add(s, 4, CandidateState.QUEUED, DAY2, [result("watermark", "borderline", 0.6)], "wm")
        add(s, 5, CandidateState.FAILED, DAY2, [], "truncated")
        add(s, 6, CandidateState.PENDING, DAY2, [])
    return ids


def test_daily_counts_split_decisions_and_reasons_by_day(ctx: Context, decided: Any) -> None:
    with ctx.sessions() as session:
        days = daily_counts(session, DAY1 - timedelta(days=1))
    assert [d.day.isoformat() for d in days] == ["2026-11-20", "2026-11-21"]
    assert dict(days[0].decisions) == {"published": 1}
    assert dict(days[1].decisions) == {"published": 1, "rejected": 1, "queued": 1, "failed": 1}
    assert dict(days[1].reasons) == {
        "rejected: off_topic": 1,
        "queued: wm": 1,
        "failed: truncated": 1,
    }
    with ctx.sessions() as session:
        assert len(daily_counts(session, DAY2)) == 1


def test_filter_scores_collect_each_filters_distribution(ctx: Context, decided: Any) -> None:
    with ctx.sessions() as session:
        scores = filter_scores(session, DAY1)
    assert sorted(scores["gallery_fit"].tolist()) == [-5.0, 28.0, 30.0]
    assert scores["watermark"].tolist() == [0.6]


def test_agreement_compares_automatic_verdicts_with_admin_reviews(
    ctx: Context, decided: Any
) -> None:
    with ctx.sessions() as session:
        measured = agreement(session)
    # Published then approved agrees; rejected then approved (published anyway) does not.
    assert (measured.reviewed, measured.agreed, measured.rate) == (2, 1, 0.5)
    assert measured.by_filter == {"gallery_fit": (1, 2)}


def test_explain_finds_decisions_by_candidate_post_and_image(
    ctx: Context, decided: dict[str, int]
) -> None:
    with ctx.sessions() as session:
        by_candidate = explain(session, f"c{decided['rejected']}")
        by_post = explain(session, "t3_p3")
        by_bare_post = explain(session, "p3")
        with pytest.raises(NotFound):
            explain(session, "t3_nothing")
        with pytest.raises(NotFound):
            explain(session, "999")
    assert by_candidate == by_post == by_bare_post
    (item,) = by_candidate
    assert item.state == "rejected" and item.reason == "because off_topic"
    assert item.filters[0]["filter"] == "gallery_fit" and item.review == "approved"
