"""End to end: a gallery with a fitted model and a trained watermark detector ingests a subreddit.

The tiny model has random weights, so which photo the watermark detector or the CLIP NSFW
ensemble scores highest is arbitrary; the test scores the candidates the way the pipeline does
first and sets the thresholds between those scores (settings hold every threshold). What it
checks is the pipeline: every filter runs on every candidate no cheaper filter rejected (the
others record "not run"), each verdict follows its filter's thresholds, the decision follows
the verdicts, and the reasons are kept and explained.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps
from sqlalchemy import select

from ingest.runner import run_ingest
from scenery.config import GRID_THUMB, Settings
from scenery.context import Context
from scenery.curation.explain import explain
from scenery.curation.fitting import fit_gallery_model
from scenery.curation.nsfw import ClipNsfwScorer
from scenery.curation.verdicts import COST_ORDER, EXPENSIVE, Facts
from scenery.curation.watermark import (
    DETAIL,
    WatermarkFilter,
    detail_view,
    save_watermark,
    train_watermark,
)
from scenery.doctor import examine
from scenery.embed import OpenClipEmbedder
from scenery.imaging import decode, thumbnail
from scenery.importer import Importer
from scenery.models import Post, PostOutcome
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post

STATE = {"published": "publish", "queued": "queue", "rejected": "reject"}


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def variants(photo: Path) -> list[Image.Image]:
    image = Image.open(photo).convert("RGB")
    image.thumbnail((1600, 1600))
    w, h = image.size
    return [
        image,
        ImageOps.mirror(image),
        image.crop((0, 0, w * 4 // 5, h * 4 // 5)).resize((w, h)),
        image.crop((w // 5, h // 5, w, h)).resize((w, h)),
    ]


@dataclass
class Gallery:
    fake: FakeReddit
    settings: Settings
    embedder: OpenClipEmbedder
    candidates: dict[str, bytes]  # post id -> the image bytes it links to


@pytest.fixture
def gallery(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> Iterator[Gallery]:
    """40 trusted references from 10 photos, a fitted gallery model and watermark detector."""
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path,
            database_url=db_url,
            gallery_fit=True,
            nsfw_clip=True,
            gmm_min_reference=20,
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        references = [v for photo in photos[:10] for v in variants(photo)]
        folder = tmp_path / "references"
        folder.mkdir()
        for n, image in enumerate(references):
            (folder / f"ref{n:02}.jpg").write_bytes(jpeg(image))
        report = Importer(ctx).run(sorted(folder.iterdir()))
        assert len(report.imported) == 40
        fit_gallery_model(ctx)
        groups = [n // 4 for n in range(len(references))]
        training = train_watermark(tiny_embedder, references, groups=groups, variants_per_image=1)
        save_watermark(settings, training)
        ctx.close()

        candidates = {
            f"fresh-{photo.stem}{m}": jpeg(variants(photo)[m])
            for photo in photos[10:]
            for m in (0, 2, 3)  # the photo and two crops (a mirror would be a pHash duplicate)
        }
        # a flat placeholder frame (what a host serves for a removed image): off-topic
        candidates["magenta"] = jpeg(Image.new("RGB", (1600, 1200), (255, 0, 255)))
        candidates["exactdup"] = (folder / "ref05.jpg").read_bytes()
        candidates["small"] = jpeg(Image.open(photos[11]).convert("RGB").resize((640, 400)))
        posts = [
            make_post(key, url=fake.add_file(f"/img/{key}.jpg", data))
            for key, data in candidates.items()
        ]
        posts.append(make_post("adult", url=fake.url("/img/fresh-wine0.jpg"), over_18=True))
        fake.add_posts("EarthPorn", posts)
        yield Gallery(fake, settings, tiny_embedder, candidates)


def pipeline_scores(g: Gallery, data: bytes) -> tuple[float, float]:
    """The watermark and CLIP NSFW probabilities, from the views the pipeline makes."""
    # decoded at the watermark detector's edge (the OCR's view is decoded apart, later)
    decoded = decode(data, g.settings.max_image_pixels, edge=DETAIL)
    small = thumbnail(decoded.image, GRID_THUMB)
    vector = g.embedder.encode_images([small])[0]
    facts = Facts("x", decoded.width, decoded.height, "", "", vector, small)
    facts.detail = detail_view(decoded.image)
    watermark = WatermarkFilter.from_settings(g.settings, g.embedder)
    assert watermark is not None
    wm = watermark.check(facts).score
    assert wm is not None
    return wm, float(ClipNsfwScorer(g.embedder).probability(vector)[0])


SEVERITY = ["pass", "borderline", "fail"]


def judge(score: float, fail: float, borderline: float) -> str:
    return "fail" if score >= fail else "borderline" if score >= borderline else "pass"


def signal(result: dict[str, Any], name: str) -> float:
    """One signal's value from the NSFW filter's reason ("nudenet 0.012, clip 0.300")."""
    found = re.search(rf"{name} ([0-9.]+)", result["reason"])
    assert found, result
    return float(found[1])


def between(scores: list[float]) -> tuple[float, float]:
    """A threshold just under the highest score and a borderline just under the second."""
    top, second, third = sorted(scores, reverse=True)[:3]
    return (top + second) / 2, (second + third) / 2


def test_ingest_decides_with_every_filter_and_explains_each_decision(gallery: Gallery) -> None:
    g = gallery
    photos = [key for key in g.candidates if key.startswith("fresh")]
    scored = {key: pipeline_scores(g, g.candidates[key]) for key in photos}
    nsfw_fail, nsfw_queue = between([nsfw for _, nsfw in scored.values()])
    # The NSFW filter runs first (it costs less): the watermark threshold picks among the
    # photos it lets through, since a rejected photo never runs the watermark detector.
    clean = [wm for wm, nsfw in scored.values() if nsfw < nsfw_fail]
    wm_fail, wm_queue = between(clean)
    settings = g.settings.model_copy(
        update={
            "watermark_threshold": wm_fail,
            "watermark_borderline": wm_queue,
            "nsfw_clip_threshold": nsfw_fail,
            "nsfw_clip_borderline": nsfw_queue,
        }
    )
    ctx = Context(settings, embedder=g.embedder)
    try:
        summary = run_ingest(ctx, ["EarthPorn"], limit=50)
        with ctx.sessions() as session:
            found = {key: explain(session, f"t3_{key}") for key in g.candidates}
            adult = session.scalars(select(Post).where(Post.fullname == "t3_adult")).one()
        assert examine(ctx).ok
    finally:
        ctx.close()

    assert summary.published >= 1 and summary.queued >= 1
    verdicts: dict[str, set[str]] = {}  # filter -> the verdicts it gave
    for key, [item] in found.items():
        results = {r["filter"]: r for r in item.filters}
        for r in item.filters:
            verdicts.setdefault(r["filter"], set()).add(r["verdict"])
        kinds = {r["verdict"] for r in item.filters}
        expected = "reject" if "fail" in kinds else "queue" if "borderline" in kinds else "publish"
        assert STATE[item.state] == expected, (key, item.filters)
        # Cheapest first; once a filter fails, the expensive ones after it did not run.
        failed = next((r["filter"] for r in item.filters if r["verdict"] == "fail"), None)
        for r in item.filters:
            skipped = r["verdict"] == "not_run"
            assert skipped == (
                r["filter"] in EXPENSIVE
                and failed is not None
                and (COST_ORDER.index(r["filter"]) > COST_ORDER.index(failed))
            ), (key, item.filters)
            if skipped:
                assert r["reason"] == f"not run: decided by {failed}"
        if key in scored and results["watermark"]["verdict"] != "not_run":
            # the pipeline scored what the test scored, and judged by the settings
            assert set(results) >= {"image_rules", "gallery_fit", "watermark", "nsfw"}
            wm, nsfw = scored[key]
            assert results["watermark"]["score"] == pytest.approx(wm, abs=1e-4)
            assert results["watermark"]["verdict"] == judge(wm, wm_fail, wm_queue)
            # how near a threshold, for the review queue's order
            margin = min(abs(wm - wm_queue), abs(wm - wm_fail)) / abs(wm_fail - wm_queue)
            assert results["watermark"]["margin"] == pytest.approx(margin, abs=1e-3)
            # the worst of the CLIP signal (scored above) and NudeNet (its own tests)
            assert nsfw == pytest.approx(signal(results["nsfw"], "clip"), abs=2e-3)
            nudenet = signal(results["nsfw"], "nudenet")
            worst = max(
                judge(nsfw, nsfw_fail, nsfw_queue),
                judge(nudenet, settings.nsfw_nudenet_threshold, settings.nsfw_nudenet_borderline),
                key=SEVERITY.index,
            )
            assert results["nsfw"]["verdict"] == worst, (key, results["nsfw"])
        if item.state == "rejected":
            assert item.reason and any(r["reason"] for r in item.filters)

    # reasons from every filter kind: image rules, duplicates, gallery fit, watermark, NSFW
    def result(key: str, name: str) -> dict[str, Any]:
        return next(r for r in found[key][0].filters if r["filter"] == name)

    assert result("small", "image_rules")["code"] == "too_small"
    assert found["exactdup"][0].state == "rejected"
    assert result("exactdup", "exact_duplicate")["code"] == "duplicate_exact"
    # a flat frame is far from every photo, even in the tiny random model's space
    flat = result("magenta", "gallery_fit")
    assert (flat["verdict"], flat["code"]) == ("fail", "off_topic")
    assert verdicts["watermark"] - {"not_run"} == {"fail", "borderline", "pass"}
    assert "fail" in verdicts["nsfw"] and "borderline" in verdicts["nsfw"]
    assert "pass" in verdicts["gallery_fit"]
    # and a post rule: the over_18 post never became a candidate
    assert (adult.outcome, adult.reason) == (PostOutcome.SKIPPED, "post is marked NSFW")


def test_cold_start_queues_every_candidate_the_other_filters_pass(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    fake = FakeReddit()
    with fake.running():
        posts = [make_post(p.stem, url=fake.add_photo(f"/img/{p.name}", p)) for p in photos[:4]]
        posts.append(make_post("copy", url=fake.add_photo("/img/copy.jpg", photos[0])))
        fake.add_posts("EarthPorn", posts)
        settings = fake.settings(tmp_path, database_url=db_url, gallery_fit=True)
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        try:
            summary = run_ingest(ctx, ["EarthPorn"], limit=10)
            with ctx.sessions() as session:
                found = {p.stem: explain(session, p.stem)[0] for p in photos[:4]}
                copy = explain(session, "copy")[0]
        finally:
            ctx.close()
    assert (summary.published, summary.queued) == (0, 4)
    for item in found.values():
        fit = next(r for r in item.filters if r["filter"] == "gallery_fit")
        assert (item.state, fit["verdict"], fit["code"]) == ("queued", "borderline", "cold_start")
    assert (copy.state, copy.filters[0]["code"]) == ("rejected", "duplicate_exact")
