"""Fit the gallery model from the reference set, save it with its charts, refit when due."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from scenery.context import Context
from scenery.curation.artifacts import Artifact
from scenery.curation.gallery_fit import (
    FitReport,
    fit_from_settings,
    needs_refit,
    save_gallery_model,
)
from scenery.curation.plots import plot_bic, plot_scores
from scenery.curation.reference import candidate_vectors, reference_count, reference_vectors
from scenery.errors import CurationError
from scenery.models import utcnow

log = logging.getLogger(__name__)

RECENT = timedelta(days=7)


@dataclass(frozen=True)
class Fitted:
    report: FitReport
    artifact: Artifact
    candidate_scores: np.ndarray


def fit_gallery_model(ctx: Context) -> Fitted:
    """Fit on the whole reference set now; save the model, its BIC curve and score histograms."""
    name = ctx.embedder.name
    with ctx.sessions() as session:
        _, vectors = reference_vectors(session, name)
        _, recent = candidate_vectors(session, name, utcnow() - RECENT)
    minimum = ctx.settings.gmm_min_reference
    if len(vectors) < minimum:
        raise CurationError(
            f"the reference set has {len(vectors)} images with {name} embeddings; the gallery "
            f"model needs at least {minimum} (SCENERY_GMM_MIN_REFERENCE). Import or approve more."
        )
    report = fit_from_settings(vectors, name, ctx.settings)
    artifact = save_gallery_model(ctx.settings, report, len(vectors))
    scores = report.model.score(recent) if len(recent) else np.zeros(0)
    plot_bic(report.bic, (report.components, report.covariance), artifact.path / "bic.png")
    plot_scores(
        report.held_out_scores,
        scores,
        report.model.threshold,
        report.model.borderline,
        artifact.path / "scores.png",
    )
    log.info("saved gallery model %s", artifact.path)
    return Fitted(report, artifact, scores)


def refit_if_due(ctx: Context) -> Fitted | None:
    """Refit when the reference set first reaches the minimum or has grown enough since."""
    with ctx.sessions() as session:
        n = reference_count(session, ctx.embedder.name)
    if not needs_refit(ctx.settings, n, ctx.embedder.name):
        return None
    log.info("reference set at %d images: refitting the gallery model", n)
    return fit_gallery_model(ctx)
