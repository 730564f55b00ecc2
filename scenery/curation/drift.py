"""Is curation still working? The reference set's gallery-fit scores against recent candidates'
(two-sample Kolmogorov-Smirnov), and the acceptance rate now against before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from scipy.stats import ks_2samp

from scenery.context import Context
from scenery.curation.gallery_fit import GalleryModel, load_gallery_model
from scenery.curation.monitoring import DailyCounts, daily_counts
from scenery.curation.reference import candidate_vectors, reference_vectors
from scenery.models import utcnow

RECENT = timedelta(days=7)
BEFORE = timedelta(days=28)  # the weeks before RECENT that acceptance is compared with


@dataclass(frozen=True)
class ScoreDrift:
    model: GalleryModel
    reference: np.ndarray  # gallery-fit scores of the reference set
    candidates: np.ndarray  # of the candidates stored in the last 7 days
    statistic: float | None  # KS statistic; None with too few candidates to say
    p_value: float | None


@dataclass(frozen=True)
class Acceptance:
    recent: float | None  # published share of decided candidates, last 7 days
    before: float | None  # the same over the 28 days before
    recent_decided: int
    before_decided: int

    @property
    def change(self) -> float | None:
        if self.recent is None or self.before is None:
            return None
        return self.recent - self.before


@dataclass(frozen=True)
class DriftReport:
    scores: ScoreDrift | None  # None until a gallery model exists
    acceptance: Acceptance
    alerts: list[str]


def drift_report(ctx: Context) -> DriftReport:
    settings = ctx.settings
    scores = score_drift(ctx)
    acceptance = acceptance_rates(ctx)
    alerts = []
    statistic = scores.statistic if scores is not None else None
    if scores is not None and statistic is not None and statistic >= settings.drift_ks_threshold:
        alerts.append(
            f"Candidates' gallery-fit scores drift from the reference set: KS statistic "
            f"{statistic:.2f} >= {settings.drift_ks_threshold:g} "
            f"({len(scores.candidates)} candidates in 7 days)"
        )
    change = acceptance.change
    if change is not None and abs(change) >= settings.acceptance_change_threshold:
        alerts.append(
            f"Acceptance rate changed sharply: {acceptance.recent:.0%} in the last 7 days "
            f"against {acceptance.before:.0%} in the 28 days before"
        )
    return DriftReport(scores, acceptance, alerts)


def score_drift(ctx: Context) -> ScoreDrift | None:
    model = load_gallery_model(ctx.settings)
    if model is None:
        return None
    name = ctx.embedder.name
    with ctx.sessions() as session:
        _, reference = reference_vectors(session, name)
        _, recent = candidate_vectors(session, name, utcnow() - RECENT)
    ref_scores = model.score(reference) if len(reference) else np.zeros(0)
    cand_scores = model.score(recent) if len(recent) else np.zeros(0)
    statistic = p_value = None
    if len(cand_scores) >= ctx.settings.drift_min_candidates and len(ref_scores):
        test = ks_2samp(ref_scores, cand_scores)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    return ScoreDrift(model, ref_scores, cand_scores, statistic, p_value)


def acceptance_rates(ctx: Context) -> Acceptance:
    now = utcnow()
    with ctx.sessions() as session:
        days = daily_counts(session, now - RECENT - BEFORE)
    cut = (now - RECENT).date()
    recent = _acceptance([d for d in days if d.day > cut])
    before = _acceptance([d for d in days if d.day <= cut])
    return Acceptance(recent[0], before[0], recent[1], before[1])


def _acceptance(days: list[DailyCounts]) -> tuple[float | None, int]:
    """The published share of the candidates decided on these days, and how many were."""
    published = sum(d.decisions.get("published", 0) for d in days)
    decided = sum(d.decisions.get(k, 0) for d in days for k in ("published", "queued", "rejected"))
    return (published / decided if decided else None), decided
