"""Gallery fit: how well a candidate's CLIP features fit the gallery, by a BIC-chosen GMM.

Embeddings are reduced with PCA (fitted on the reference set, at most ``gmm_max_dims``
dimensions: full covariances on raw 512-d vectors overfit and BIC then picks one or two
components), then ``GaussianMixture`` is fitted over a grid of component counts and covariance
types and the lowest BIC wins. The pass threshold is the log-likelihood that a chosen share of
held-out reference images reach; a lower one marks the borderline band that queues instead of
rejecting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from scenery.config import Settings
from scenery.curation.artifacts import Artifact, latest_meta, load_latest, save_artifact
from scenery.curation.verdicts import Facts, FilterResult, Verdict, band_margin

log = logging.getLogger(__name__)

KIND = "gmm"
COVARIANCES = ("full", "diag")
# Component counts tried up to the maximum: dense where BIC differences matter, sparse beyond.
COMPONENT_GRID = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32)
HELD_OUT_SHARE = 0.2
SAMPLES_PER_DIM = 4  # PCA keeps at most n_train / 4 dimensions, so covariances stay estimable
# Each component gets at least this many training images: below it a component can sit on one
# or two points, its likelihood soars and BIC rewards the collapse (15 images chose 6 of them).
SAMPLES_PER_COMPONENT = 10


@dataclass
class GalleryModel:
    """PCA + GMM with calibrated thresholds on the per-image log-likelihood."""

    pca: PCA
    gmm: GaussianMixture
    threshold: float  # pass at or above
    borderline: float  # queue at or above, reject below
    embedder: str

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """Log-likelihood of each embedding under the gallery's mixture."""
        return self.gmm.score_samples(self.pca.transform(np.atleast_2d(vectors)))


@dataclass
class FitReport:
    """A fitted model and how it was chosen."""

    model: GalleryModel
    bic: list[dict[str, Any]]  # {"components", "covariance", "bic"} for every fit tried
    components: int
    covariance: str
    dims: int
    n_train: int
    held_out_scores: np.ndarray
    seconds: float
    pass_share: float
    borderline_share: float
    explained_variance: float = 0.0
    notes: list[str] = field(default_factory=list)


def fit_gallery(
    vectors: np.ndarray,
    embedder: str,
    *,
    max_dims: int = 128,
    max_components: int = 32,
    pass_share: float = 0.95,
    borderline_share: float = 0.99,
    covariances: Sequence[str] = COVARIANCES,
    seed: int = 0,
) -> FitReport:
    """Fit PCA and a BIC-chosen GMM on reference embeddings; calibrate on a held-out part."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vectors))
    n_held = max(1, round(len(vectors) * HELD_OUT_SHARE))
    held, train = vectors[order[:n_held]], vectors[order[n_held:]]
    dims = max(1, min(max_dims, train.shape[1], len(train) // SAMPLES_PER_DIM))
    pca = PCA(n_components=dims, random_state=seed).fit(train)
    reduced = pca.transform(train)
    bic, best = [], None
    for covariance in covariances:
        for k in (
            k
            for k in COMPONENT_GRID
            if k <= min(max_components, max(1, len(train) // SAMPLES_PER_COMPONENT))
        ):
            gmm = GaussianMixture(
                k, covariance_type=covariance, reg_covar=1e-4, max_iter=200, random_state=seed
            ).fit(reduced)
            value = float(gmm.bic(reduced))
            bic.append({"components": k, "covariance": covariance, "bic": value})
            if best is None or value < best[0]:
                best = (value, k, covariance, gmm)
    assert best is not None
    _, k, covariance, gmm = best
    held_scores = gmm.score_samples(pca.transform(held))
    threshold = float(np.quantile(held_scores, 1 - pass_share))
    borderline = float(np.quantile(held_scores, 1 - borderline_share))
    model = GalleryModel(pca, gmm, threshold, min(borderline, threshold), embedder)
    log.info("gallery fit: %d components (%s) on %d x %d", k, covariance, len(train), dims)
    return FitReport(
        model=model,
        bic=bic,
        components=k,
        covariance=covariance,
        dims=dims,
        n_train=len(train),
        held_out_scores=held_scores,
        seconds=time.perf_counter() - started,
        pass_share=pass_share,
        borderline_share=borderline_share,
        explained_variance=float(pca.explained_variance_ratio_.sum()),
    )


def fit_from_settings(vectors: np.ndarray, embedder: str, settings: Settings) -> FitReport:
    """``fit_gallery`` with the grid and shares from the settings."""
    return fit_gallery(
        vectors,
        embedder,
        max_dims=settings.gmm_max_dims,
        max_components=settings.gmm_max_components,
        pass_share=settings.gmm_pass_share,
        borderline_share=settings.gmm_borderline_share,
    )


def save_gallery_model(settings: Settings, report: FitReport, n_reference: int) -> Artifact:
    """Save a fit as the newest gallery model version."""
    meta = {
        "embedder": report.model.embedder,
        "n_reference": n_reference,
        "n_train": report.n_train,
        "n_held_out": len(report.held_out_scores),
        "dims": report.dims,
        "explained_variance": report.explained_variance,
        "components": report.components,
        "covariance": report.covariance,
        "threshold": report.model.threshold,
        "borderline": report.model.borderline,
        "pass_share": report.pass_share,
        "borderline_share": report.borderline_share,
        "bic": report.bic,
        "held_out_scores": report.held_out_scores,
        "seconds": report.seconds,
    }
    return save_artifact(settings, KIND, {"model": report.model}, meta)


def load_gallery_model(settings: Settings) -> GalleryModel | None:
    """The newest gallery model, or None before the first fit."""
    artifact = load_latest(settings, KIND)
    return artifact.objects["model"] if artifact else None


def needs_refit(settings: Settings, n_reference: int, embedder: str) -> bool:
    """Whether the reference set is big enough and grew enough (or changed model) to refit."""
    if n_reference < settings.gmm_min_reference:
        return False
    meta = latest_meta(settings, KIND)
    if meta is None or meta.get("embedder") != embedder:
        return True
    return n_reference >= meta["n_reference"] * (1 + settings.gmm_refit_growth)


@dataclass
class GalleryFit:
    """The filter: pass, queue or reject by log-likelihood; queue everything at cold start."""

    model: GalleryModel | None
    n_reference: int = 0
    min_reference: int = 50
    name: str = "gallery_fit"

    def check(self, facts: Facts) -> FilterResult:
        if self.model is None:
            reason = (
                f"no gallery model yet ({self.n_reference} of {self.min_reference} reference "
                "images): an admin decides"
            )
            return FilterResult(self.name, Verdict.BORDERLINE, None, reason, "cold_start")
        score = float(self.model.score(facts.vector)[0])
        if score >= self.model.threshold:
            verdict, code, where = Verdict.PASS, "ok", "fits the gallery"
        elif score >= self.model.borderline:
            verdict, code, where = Verdict.BORDERLINE, "off_topic", "fits the gallery loosely"
        else:
            verdict, code, where = Verdict.FAIL, "off_topic", "does not fit the gallery"
        reason = f"{where}: log-likelihood {score:.1f} (pass {self.model.threshold:.1f})"
        margin = band_margin(score, self.model.borderline, self.model.threshold)
        return FilterResult(self.name, verdict, score, reason, code, margin=margin)
