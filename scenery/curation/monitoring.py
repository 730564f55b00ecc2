"""Monitoring data for the admin: decisions per day, score distributions, agreement.

Everything here reads what the pipeline and the admin stored on candidates; nothing is cached.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from scenery.models import Candidate, CandidateState

DECIDED = (CandidateState.PUBLISHED, CandidateState.QUEUED, CandidateState.REJECTED)
AUTOMATIC = {CandidateState.PUBLISHED: "approved", CandidateState.REJECTED: "rejected"}
NOT_RUN = "not_run"  # Verdict.NOT_RUN as stored


@dataclass
class DailyCounts:
    """Decisions of one day: by decision, and rejections by reason code."""

    day: date
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


def daily_counts(session: Session, since: datetime) -> list[DailyCounts]:
    """Per-day counts by decision and reason since a moment, oldest day first."""
    rows = session.execute(
        select(Candidate.decided_at, Candidate.state, Candidate.reason_code).where(
            Candidate.decided_at >= since, Candidate.state != CandidateState.PENDING
        )
    ).all()
    days: dict[date, DailyCounts] = {}
    for decided_at, state, code in rows:
        if decided_at is None:
            continue  # not decided: excluded by the query already
        day = decided_at.date()
        counts = days.setdefault(day, DailyCounts(day))
        counts.decisions[state.value] += 1
        if state in (CandidateState.REJECTED, CandidateState.QUEUED, CandidateState.FAILED):
            counts.reasons[f"{state.value}: {code or 'unknown'}"] += 1
    return [days[d] for d in sorted(days)]


def filter_scores(session: Session, since: datetime) -> dict[str, np.ndarray]:
    """Every filter's scores on the candidates decided since a moment, by filter name."""
    rows = session.scalars(
        select(Candidate.filters).where(Candidate.decided_at >= since, Candidate.state.in_(DECIDED))
    ).all()
    scores: dict[str, list[float]] = defaultdict(list)
    for results in rows:
        for result in results or []:
            # A filter the cascade skipped has no score of its own on this candidate.
            if result.get("verdict") != NOT_RUN and result.get("score") is not None:
                scores[result["filter"]].append(float(result["score"]))
    return {name: np.asarray(values) for name, values in scores.items()}


@dataclass(frozen=True)
class Agreement:
    """How often the automatic verdicts matched the admin's later decisions."""

    reviewed: int  # candidates decided automatically (published/rejected) and then reviewed
    agreed: int
    by_filter: dict[str, tuple[int, int]]  # filter -> (agreed, reviewed) over pass/fail verdicts

    @property
    def rate(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


def agreement(session: Session) -> Agreement:
    """Agreement between automatic decisions (and each filter's verdict) and admin reviews.

    A published candidate the admin kept, or a rejected one the admin left rejected, agrees;
    queued candidates had no automatic decision and count only per filter: a filter's ``pass``
    agrees with an approval, its ``fail`` with a rejection. A filter that did not run on a
    candidate (the cascade skipped it) counts neither way for that candidate."""
    rows = session.execute(
        select(Candidate.state, Candidate.review, Candidate.filters).where(
            Candidate.review.is_not(None)
        )
    ).all()
    reviewed = agreed = 0
    by_filter: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for state, review, results in rows:
        automatic = AUTOMATIC.get(state)
        if automatic is not None:
            reviewed += 1
            agreed += automatic == review
        for result in results or []:
            verdict = result.get("verdict")
            if verdict in ("pass", "fail"):
                tally = by_filter[result["filter"]]
                tally[0] += (verdict == "pass") == (review == "approved")
                tally[1] += 1
    return Agreement(reviewed, agreed, {k: (v[0], v[1]) for k, v in by_filter.items()})
