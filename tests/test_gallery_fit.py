"""The gallery-fit model: BIC choice, threshold calibration, cold start, refit rule, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scenery.config import Settings
from scenery.context import Context
from scenery.curation.artifacts import load_latest, save_artifact, versions
from scenery.curation.fitting import fit_gallery_model, refit_if_due
from scenery.curation.gallery_fit import (
    GalleryFit,
    fit_gallery,
    load_gallery_model,
    needs_refit,
    save_gallery_model,
)
from scenery.curation.reference import reference_count, reference_vectors
from scenery.curation.verdicts import Facts, Verdict
from scenery.embed import OpenClipEmbedder
from scenery.errors import CurationError
from scenery.importer import Importer


def clusters(
    n_clusters: int, per_cluster: int, dim: int = 64, seed: int = 0, sample: int | None = None
) -> np.ndarray:
    """Unit vectors in well-separated clusters, like embeddings of a few kinds of photo.

    ``seed`` places the clusters; ``sample`` (default: the same) draws the points in them."""
    centres = np.random.default_rng(seed).normal(size=(n_clusters, dim)) * 3
    rng = np.random.default_rng(seed if sample is None else 1000 + sample)
    points = np.concatenate([c + rng.normal(size=(per_cluster, dim)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points[rng.permutation(len(points))].astype(np.float32)


def facts_for(vector: np.ndarray) -> Facts:
    return Facts("0" * 64, 2000, 1500, "0" * 64, "0" * 64, vector, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("n_clusters", [1, 3, 5])
def test_bic_picks_the_number_of_clusters_in_the_data(n_clusters: int) -> None:
    report = fit_gallery(clusters(n_clusters, 150), "test", max_dims=16, max_components=12)
    assert report.components == n_clusters
    tried = {(r["components"], r["covariance"]) for r in report.bic}
    assert {(1, "full"), (1, "diag"), (12, "full"), (12, "diag")} <= tried
    assert report.dims == 16


def test_a_small_reference_set_gets_few_components_not_one_per_image() -> None:
    report = fit_gallery(clusters(3, 10), "test", max_dims=4)  # 24 fitted, 6 held out
    assert max(r["components"] for r in report.bic) == 2
    assert report.components <= 2


def test_reduction_is_capped_by_the_data_size() -> None:
    report = fit_gallery(clusters(2, 20), "test", max_dims=128)
    assert report.dims == report.n_train // 4


def test_threshold_passes_the_chosen_share_of_held_out_references() -> None:
    data = clusters(3, 400, seed=1)
    report = fit_gallery(data, "test", max_dims=16, max_components=6, pass_share=0.9)
    held = report.held_out_scores
    assert len(held) == round(len(data) * 0.2)
    passing = float((held >= report.model.threshold).mean())
    assert 0.9 <= passing <= 0.9 + 2 / len(held)
    assert report.model.borderline <= report.model.threshold
    # Fresh images of the same kinds pass at about the same rate.
    fresh = clusters(3, 400, seed=1, sample=2)  # new draws from the same distribution
    scores = report.model.score(fresh)
    assert 0.85 <= float((scores >= report.model.threshold).mean()) <= 0.95


def test_filter_passes_fitting_queues_loose_and_rejects_foreign_vectors() -> None:
    data = clusters(2, 300, seed=2)
    model = fit_gallery(data, "test", max_dims=16, max_components=4).model
    gallery_fit = GalleryFit(model)
    member = gallery_fit.check(facts_for(data[0]))
    assert member.verdict == Verdict.PASS and member.code == "ok"
    foreign = -data[:5].mean(axis=0)
    far = gallery_fit.check(facts_for(foreign / np.linalg.norm(foreign)))
    assert far.verdict == Verdict.FAIL and far.code == "off_topic"
    assert far.score is not None and far.score < model.borderline
    # A score between the two thresholds queues.
    model.borderline = float(model.score(data[0])[0]) - 1
    model.threshold = float(model.score(data[0])[0]) + 1
    queued = gallery_fit.check(facts_for(data[0]))
    assert queued.verdict == Verdict.BORDERLINE
    assert queued.margin == 0.5  # in the middle of the band: one unit from each threshold
    model.threshold = float(model.score(data[0])[0]) + 3
    assert gallery_fit.check(facts_for(data[0])).margin == 0.25  # nearer the queue threshold


def test_cold_start_queues_every_candidate_with_the_reason() -> None:
    result = GalleryFit(None, n_reference=12, min_reference=50).check(facts_for(np.ones(4)))
    assert result.verdict == Verdict.BORDERLINE
    assert result.code == "cold_start"
    assert "12 of 50" in result.reason


def test_refit_is_due_at_the_minimum_then_after_twenty_percent_growth(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", gmm_min_reference=50)
    assert not needs_refit(settings, 49, "m")
    assert needs_refit(settings, 50, "m")
    report = fit_gallery(clusters(2, 40), "m", max_dims=8, max_components=3)
    save_gallery_model(settings, report, n_reference=100)
    assert not needs_refit(settings, 100, "m")
    assert not needs_refit(settings, 119, "m")
    assert needs_refit(settings, 120, "m")
    assert needs_refit(settings, 100, "another-model")


def test_newest_complete_artifact_wins_and_half_written_ones_are_ignored(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert load_latest(settings, "gmm") is None and load_gallery_model(settings) is None
    save_artifact(settings, "gmm", {"model": "old"}, {"n": 1})
    newer = save_artifact(settings, "gmm", {"model": "new"}, {"n": 2})
    (newer.path.parent / ".20990101T000000000000Z.tmp").mkdir()  # a crashed fit
    incomplete = newer.path.parent / "20990101T000000000000Z"
    incomplete.mkdir()  # no files: never finished
    latest = load_latest(settings, "gmm")
    assert latest is not None and latest.objects == {"model": "new"}
    assert latest.meta["n"] == 2 and latest.meta["kind"] == "gmm"
    assert len(versions(settings, "gmm")) == 2


def test_fit_command_core_fits_saves_charts_and_refits_only_when_due(
    settings: Settings, tiny_embedder: OpenClipEmbedder, photo_dir: Path
) -> None:
    ctx = Context(settings.model_copy(update={"gmm_min_reference": 10}), embedder=tiny_embedder)
    ctx.migrate()
    with pytest.raises(CurationError, match="needs at least 10"):
        fit_gallery_model(ctx)
    Importer(ctx).run(sorted(photo_dir.glob("*.jpg")))
    with ctx.sessions() as session:
        assert reference_count(session, ctx.embedder.name) == 15
        ids, vectors = reference_vectors(session, ctx.embedder.name)
    assert vectors.shape == (15, ctx.embedder.dim) and ids == sorted(ids)
    fitted = refit_if_due(ctx)
    assert fitted is not None
    meta = json.loads((fitted.artifact.path / "meta.json").read_text())
    assert meta["n_reference"] == 15 and meta["embedder"] == ctx.embedder.name
    assert meta["components"] == fitted.report.components and len(meta["bic"]) >= 2
    for chart in ("bic.png", "scores.png"):
        assert (fitted.artifact.path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert refit_if_due(ctx) is None  # nothing grew
    model = load_gallery_model(ctx.settings)
    assert model is not None and model.embedder == ctx.embedder.name
    ctx.close()
