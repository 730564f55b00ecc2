"""Not-run results stored with a candidate: left out of score distributions and agreement,
counted once in the daily decisions (and so in drift's acceptance rates, made from them)."""

from __future__ import annotations

import pytest

from scenery.context import Context
from scenery.curation.monitoring import agreement, daily_counts, filter_scores
from scenery.db import transaction
from scenery.models import CandidateState
from scenery.review import not_run
from tests.test_monitoring import DAY1, add, result

SKIPPED = {
    "filter": "nsfw",
    "verdict": "not_run",
    "score": None,
    "reason": "not run: decided by gallery_fit",
    "code": "not_run",
}


def skipped(name: str) -> dict[str, object]:
    return {**SKIPPED, "filter": name}


@pytest.fixture
def mixed(ctx: Context) -> None:
    """Two candidates that ran NSFW (reviewed), two that a cheap filter rejected first."""
    with transaction(ctx.sessions) as s:
        fit_fail = result("gallery_fit", "fail", -9.0, "off_topic")
        add(
            s,
            1,
            CandidateState.PUBLISHED,
            DAY1,
            [result("gallery_fit", "pass", 30.0), result("nsfw", "pass", 0.1)],
            None,
            "approved",
        )
        add(
            s,
            2,
            CandidateState.REJECTED,
            DAY1,
            [result("gallery_fit", "pass", 25.0), result("nsfw", "fail", 1.4, "nsfw")],
            "nsfw",
            "rejected",
        )
        # rejected by gallery fit; the admin agreed, then disagreed
        add(
            s,
            3,
            CandidateState.REJECTED,
            DAY1,
            [fit_fail, skipped("nsfw"), skipped("watermark")],
            "off_topic",
            "rejected",
        )
        add(
            s,
            4,
            CandidateState.REJECTED,
            DAY1,
            [fit_fail, skipped("nsfw"), skipped("watermark")],
            "off_topic",
            "approved",
        )


def test_score_distributions_leave_out_filters_that_did_not_run(ctx: Context, mixed: None) -> None:
    with ctx.sessions() as session:
        scores = filter_scores(session, DAY1.replace(hour=0))
    assert sorted(scores["nsfw"].tolist()) == [0.1, 1.4]
    assert sorted(scores["gallery_fit"].tolist()) == [-9.0, -9.0, 25.0, 30.0]
    assert "watermark" not in scores


def test_agreement_counts_a_filter_only_where_it_ran(ctx: Context, mixed: None) -> None:
    with ctx.sessions() as session:
        found = agreement(session)
    assert found.by_filter["nsfw"] == (2, 2)  # pass/approved and fail/rejected
    assert "watermark" not in found.by_filter
    # gallery fit: pass/approved, pass/rejected (disagrees), fail/rejected, fail/approved (no)
    assert found.by_filter["gallery_fit"] == (2, 4)
    # automatic decisions: published+approved agrees, 3 rejected: 2 left rejected
    assert (found.reviewed, found.agreed) == (4, 3)


def test_daily_decisions_count_each_candidate_once(ctx: Context, mixed: None) -> None:
    with ctx.sessions() as session:
        [day] = daily_counts(session, DAY1.replace(hour=0))
    assert day.decisions == {"published": 1, "rejected": 3}
    assert day.reasons == {"rejected: off_topic": 2, "rejected: nsfw": 1}


def test_not_run_names_the_skipped_filters_among_those_required() -> None:
    results = [result("gallery_fit", "fail", -9.0), skipped("nsfw"), skipped("watermark")]
    assert not_run(results) == ["nsfw", "watermark"]
    assert not_run(results, {"nsfw"}) == ["nsfw"]
    assert not_run(results, set()) == []
