"""End to end: an ingest whose cheap filters reject candidates never runs NudeNet, the quadrant
watermark detector or the OCR on them; explain and the admin pages say "not run"; publishing
one anyway runs them first and shows their verdicts before the admin confirms."""

from __future__ import annotations

import importlib.util
import io
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps
from sqlalchemy import select

from ingest import pipeline
from ingest.runner import run_ingest
from scenery.accounts import create_user
from scenery.cli import main
from scenery.context import Context
from scenery.curation.explain import explain
from scenery.curation.nsfw import NsfwFilter
from scenery.curation.watermark import WatermarkFilter
from scenery.db import transaction
from scenery.imaging import ImageLimits
from scenery.models import Candidate, ImageStatus
from scenery.models import Image as ImageRow
from scenery.review import ReviewError, approve
from tests.admin_world import log_in, page_token
from tests.fakes.reddit_posts import make_post
from tests.test_curation_ingest import Gallery, jpeg
from tests.test_curation_ingest import gallery as gallery  # the fixture
from web import create_app

OCR = importlib.util.find_spec("scenery.curation.ocr_watermark") is not None
EXPENSIVE = ["nsfw", "watermark", *(["watermark_text"] if OCR else [])]
Seen = dict[str, list[str]]  # filter -> the content hashes it prepared or checked


def spy(monkeypatch: pytest.MonkeyPatch, cls: type, seen: Seen) -> None:
    """Record every candidate a filter class prepares or checks."""
    for method in ("prepare", "check"):
        original: Callable[..., Any] = getattr(cls, method)

        def wrapped(self: Any, arg: Any, _original: Callable[..., Any] = original) -> Any:
            batch = arg if isinstance(arg, list | tuple) else [arg]
            seen[self.name] += [facts.sha256 for facts in batch]
            return _original(self, arg)

        monkeypatch.setattr(cls, method, wrapped)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    found: Seen = defaultdict(list)
    spy(monkeypatch, NsfwFilter, found)
    spy(monkeypatch, WatermarkFilter, found)
    if OCR:
        from scenery.curation.ocr_watermark import OcrWatermarkFilter

        spy(monkeypatch, OcrWatermarkFilter, found)
    return found


def mirrored(data: bytes) -> bytes:
    return jpeg(ImageOps.mirror(Image.open(io.BytesIO(data)).convert("RGB")))


def filters_of(ctx: Context, key: str) -> dict[str, dict[str, Any]]:
    with ctx.sessions() as session:
        [item] = explain(session, f"t3_{key}")
    return {r["filter"]: r for r in item.filters}


def test_cheap_rejections_skip_the_expensive_filters_and_publishing_runs_them_first(
    gallery: Gallery,
    seen: Seen,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = gallery
    views: list[tuple[int, int]] = []  # the OCR views the screening decoded
    if OCR:
        real = pipeline.decoded_text_view

        def recording(data: bytes, limits: ImageLimits, side: int) -> Image.Image:
            view = real(data, limits, side)
            views.append(view.size)
            return view

        monkeypatch.setattr(pipeline, "decoded_text_view", recording)
    g.fake.add_posts(
        "EarthPorn",
        [
            make_post(
                "mirror", url=g.fake.add_file("/img/mirror.jpg", mirrored(g.candidates["exactdup"]))
            )
        ],
    )
    ctx = Context(g.settings, embedder=g.embedder)
    try:
        run_ingest(ctx, ["EarthPorn"], limit=50)
        deciders = {
            "magenta": "gallery_fit",
            "mirror": "phash_duplicate",
            "small": "image_rules",
        }
        with ctx.sessions() as session:
            shas = {c.post.fullname[3:]: c.sha256 for c in session.scalars(select(Candidate))}
        for key, decider in deciders.items():
            results = filters_of(ctx, key)
            assert results[decider]["verdict"] == "fail", (key, results)
            for name in EXPENSIVE:
                assert results[name]["verdict"] == "not_run", (key, name, results)
                assert results[name]["reason"] == f"not run: decided by {decider}"
                assert results[name]["score"] is None
                assert shas[key] not in seen[name], (key, name)  # neither prepared nor checked
        # a copy of a stored file is rejected at download, before decoding: no filter ran
        assert set(filters_of(ctx, "exactdup")) == {"exact_duplicate"}
        assert all(shas["exactdup"] not in hashes for hashes in seen.values())
        # what the cheap filters pass does run them: the spies and records can tell
        fresh = next(k for k in g.candidates if k.startswith("fresh"))
        ran = filters_of(ctx, fresh)
        assert "nudenet" in ran["nsfw"]["reason"] and shas[fresh] in seen["nsfw"]
        assert all(ran[name]["verdict"] != "not_run" for name in EXPENSIVE[:1])
        if OCR:
            # the OCR's larger view was decoded once for each candidate it read, at its own
            # size, and never for one a cheap filter had rejected
            ocr = {k: filters_of(ctx, k).get("watermark_text", {}).get("verdict") for k in shas}
            read = [k for k, verdict in ocr.items() if verdict not in (None, "not_run")]
            assert len(views) == len(read) > 0, (views, read)
            assert all(max(size) == g.settings.ocr_max_side for size in views), views
            assert not set(read) & set(deciders)

        # scenery explain prints the skipped filters as such
        runner = CliRunner(
            env={
                "SCENERY_DATA_DIR": str(g.settings.data_dir),
                "SCENERY_DATABASE_URL": g.settings.db_url,
                "SCENERY_CLIP_MODEL": "tiny-test",
                "SCENERY_NSFW_CLIP": "true",
                "SCENERY_GALLERY_FIT": "true",
            }
        )
        out = runner.invoke(main, ["explain", "t3_magenta"], catch_exceptions=False).output
        assert "not_run" in out and "not run: decided by gallery_fit" in out

        magenta = next(i for k, i in image_ids(ctx).items() if k == "magenta")
        mirror = image_ids(ctx)["mirror"]
        # nothing publishes it before its checks have run, not even the CLI's path
        with (
            pytest.raises(ReviewError, match="never checked by nsfw"),
            transaction(ctx.sessions) as s,
        ):
            approve(s, [mirror], "cli:test")
    finally:
        ctx.close()

    app = create_app(g.settings, embedder=g.embedder)
    web_ctx: Context = app.extensions["scenery"]
    try:
        with transaction(web_ctx.sessions) as session:
            create_user(session, "owner", "correct horse battery")
        client = app.test_client()
        log_in(client, "owner", "correct horse battery")
        page = client.get("/admin/rejected").get_data(as_text=True)
        assert "not run: decided by gallery_fit" in page and ">not run<" in page
        token = page_token(client, "/admin/rejected")
        answer = client.post("/admin/publish", data={"ids": str(magenta), "csrf_token": token})
        shown = answer.get_data(as_text=True)
        assert answer.status_code == 200 and "Checks before publishing" in shown
        assert re.search(rf'<img src="[^"]*{shas["magenta"]}[^"]*"', shown)  # its photo beside
        assert status(web_ctx, magenta) == ImageStatus.REJECTED  # not yet: the admin confirms
        results = filters_of(web_ctx, "magenta")
        for name in EXPENSIVE:  # they ran now, on the stored file, and were recorded
            assert results[name]["verdict"] in ("pass", "borderline", "fail"), results[name]
            assert results[name]["reason"] in shown
            assert shas["magenta"] in seen[name]
        assert results["gallery_fit"]["verdict"] == "fail"  # the rest kept as it was
        token = page_token(client, "/admin/rejected")
        client.post("/admin/publish", data={"ids": str(magenta), "csrf_token": token})
        assert status(web_ctx, magenta) == ImageStatus.PUBLISHED
        # without the CSRF token nothing runs or changes
        refused = client.post("/admin/publish", data={"ids": str(mirror)})
        assert refused.status_code == 400 and status(web_ctx, mirror) == ImageStatus.REJECTED
        assert all(
            r["verdict"] == "not_run"
            for n, r in filters_of(web_ctx, "mirror").items()
            if n in EXPENSIVE
        )
    finally:
        web_ctx.close()

    # scenery publish does what "Publish anyway" does: runs the skipped checks, shows them and
    # asks; answering no publishes nothing, --yes publishes
    checked = Context(g.settings, embedder=g.embedder)
    try:
        small = image_ids(checked)["small"]
        asked = runner.invoke(main, ["publish", str(small)], input="n\n")
        assert asked.exit_code == 1 and "Publish anyway?" in asked.output, asked.output
        results = filters_of(checked, "small")
        for name in EXPENSIVE:
            assert results[name]["verdict"] in ("pass", "borderline", "fail"), results[name]
            assert f"{name:16} {results[name]['verdict']:10} {results[name]['reason']}" in (
                asked.output
            )
        assert status(checked, small) == ImageStatus.REJECTED
        done = runner.invoke(main, ["publish", "--yes", str(small)], catch_exceptions=False)
        assert done.exit_code == 0 and "checks it had skipped" not in done.output, done.output
        assert status(checked, small) == ImageStatus.PUBLISHED
    finally:
        checked.close()


def test_filters_turned_off_in_settings_do_not_hold_a_publication_back(
    gallery: Gallery,
) -> None:
    g = gallery
    ctx = Context(g.settings, embedder=g.embedder)
    try:
        run_ingest(ctx, ["EarthPorn"], limit=50)
        magenta = image_ids(ctx)["magenta"]
    finally:
        ctx.close()
    off = g.settings.model_copy(
        update={
            "nsfw_nudenet": False,
            "nsfw_clip": False,
            "watermark_filter": False,
            "ocr_watermark": False,
        }
    )
    app = create_app(off, embedder=g.embedder)
    web_ctx: Context = app.extensions["scenery"]
    try:
        with transaction(web_ctx.sessions) as session:
            create_user(session, "owner", "correct horse battery")
        client = app.test_client()
        log_in(client, "owner", "correct horse battery")
        token = page_token(client, "/admin/rejected")
        answer = client.post("/admin/publish", data={"ids": str(magenta), "csrf_token": token})
        assert answer.status_code == 302 and status(web_ctx, magenta) == ImageStatus.PUBLISHED
        assert filters_of(web_ctx, "magenta")["nsfw"]["verdict"] == "not_run"  # never ran
    finally:
        web_ctx.close()


def image_ids(ctx: Context) -> dict[str, int]:
    with ctx.sessions() as session:
        return {
            c.post.fullname[3:]: c.image_id
            for c in session.scalars(select(Candidate))
            if c.image_id is not None
        }


def status(ctx: Context, image_id: int) -> ImageStatus:
    with ctx.sessions() as session:
        image = session.get(ImageRow, image_id)
        assert image is not None
        return image.status
