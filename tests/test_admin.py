"""The admin pages through Flask's test client: escaping, the queue's decisions and their
effects, review tools, subscriptions and the dashboard's numbers (accounts: test_admin_auth)."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import func, select

from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, ImageStatus, IngestRun, Subscription
from scenery.queue import Job
from scenery.review import review_queue
from tests.admin_world import (
    ADMIN,
    HOSTILE,
    AdminWorld,
    admin_world,
    hold_listings,
    log_in,
    page_token,
    post_before,
    queued_ids,
    stat,
)


def test_the_ingest_left_a_queue_a_rejection_and_a_pair(world: AdminWorld) -> None:
    assert world.summary.queued == 5
    assert world.summary.rejected == {"duplicate_phash": 1, "too_small": 1}


def test_a_hostile_reddit_title_renders_as_text_everywhere(
    world: AdminWorld, admin: FlaskClient
) -> None:
    image = world.image_of("new0")
    escaped = "Sunset &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"

    def check(path: str) -> None:
        page = admin.get(path).get_data(as_text=True)
        assert "<script>alert" not in page and "<b>bold" not in page, path
        assert escaped in page, path

    check("/admin/queue")
    check("/admin/images?status=queued")
    token = page_token(admin, "/admin/queue")
    admin.post("/admin/decide", data={"act": f"approve:{image.id}", "csrf_token": token})
    for path in ("/", f"/image/{image.id}", "/admin/images", "/search?q=sunset&k=50"):
        check(path)
    assert HOSTILE in [r["title"] for r in admin.get("/api/images").get_json()["images"]]
    admin.post("/admin/decide", data={"act": f"reject:watermark:{image.id}", "csrf_token": token})
    check("/admin/rejected")


def test_queue_is_ordered_most_uncertain_first(world: AdminWorld) -> None:
    # Give two queued candidates scored borderline results: the one nearer a threshold leads.
    from scenery.db import transaction

    first, second, *_ = queued_ids(world)
    with transaction(world.ctx.sessions) as session:
        for image_id, margin in ((first, 0.4), (second, 0.05)):
            candidate = session.scalars(
                select(Candidate).where(Candidate.image_id == image_id)
            ).one()
            candidate.filters = [
                *candidate.filters,
                {
                    "filter": "watermark",
                    "verdict": "borderline",
                    "score": 0.6,
                    "reason": "w",
                    "code": "watermark",
                    "margin": margin,
                },
            ]
    order = queued_ids(world)
    assert order[:2] == [second, first]


def test_approve_and_reject_take_effect_and_feed_back(
    world: AdminWorld, admin: FlaskClient
) -> None:
    keep, drop, *_ = queued_ids(world)
    token = page_token(admin, "/admin/queue")
    approved = admin.post(
        "/admin/decide",
        data={"act": f"approve:{keep}", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert approved.get_json() == {"done": [keep], "verb": "approve", "reason": None}
    rejected = admin.post(
        "/admin/decide",
        data={"act": f"reject:off_topic:{drop}", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert rejected.get_json()["done"] == [drop]
    assert (
        world.status(keep) == ImageStatus.PUBLISHED and world.status(drop) == ImageStatus.REJECTED
    )
    kept, dropped = world.candidate(keep), world.candidate(drop)
    assert (kept.review, kept.reviewed_by) == ("approved", ADMIN) and kept.reviewed_at
    assert (dropped.review, dropped.review_reason) == ("rejected", "off_topic")
    # in the gallery and the index at once; the approval joins the reference set and the
    # labelled rejection becomes a negative
    assert f"/image/{keep}" in admin.get("/").get_data(as_text=True)
    assert keep in world.ctx.index.index and drop not in world.ctx.index.index
    from scenery.curation.reference import negative_vectors, reference_vectors

    with world.ctx.sessions() as session:
        ids, _ = reference_vectors(session, world.ctx.embedder.name)
        negatives = negative_vectors(session, world.ctx.embedder.name)
    assert keep in ids and drop not in ids
    assert drop in negatives["off_topic"][0]
    assert keep not in queued_ids(world) and drop not in queued_ids(world)


def test_bulk_decisions_apply_to_the_selected(world: AdminWorld, admin: FlaskClient) -> None:
    ids = queued_ids(world)[:3]
    token = page_token(admin, "/admin/queue")
    response = admin.post(
        "/admin/decide",
        data={
            "act": "reject:low_quality:selected",
            "ids": [str(i) for i in ids],
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    assert [world.status(i) for i in ids] == [ImageStatus.REJECTED] * 3
    assert len(queued_ids(world)) == 2
    bad = admin.post("/admin/decide", data={"act": "reject:because:1", "csrf_token": token})
    assert bad.status_code == 409


def test_rejected_log_filters_by_reason_and_date_and_publishes_anyway(
    world: AdminWorld, admin: FlaskClient
) -> None:
    page = admin.get("/admin/rejected").get_data(as_text=True)
    assert "duplicate_phash" in page and "too_small" in page
    only_small = admin.get("/admin/rejected?reason=too_small").get_data(as_text=True)
    assert "too_small" in only_small and "duplicate_phash" not in only_small.split("<tbody>")[1]
    future = admin.get("/admin/rejected?from=2099-01-01").get_data(as_text=True)
    assert "Nothing rejected with these filters" in future
    small = world.image_of("tiny")
    token = page_token(admin, "/admin/rejected")
    # rejected by its size, it skipped the NSFW check: that runs first, and the admin confirms
    checks = admin.post("/admin/publish", data={"ids": str(small.id), "csrf_token": token})
    assert "Checks before publishing" in checks.get_data(as_text=True)
    assert world.status(small.id) == ImageStatus.REJECTED
    admin.post("/admin/publish", data={"ids": str(small.id), "csrf_token": token})
    assert world.status(small.id) == ImageStatus.PUBLISHED
    assert "too_small" not in admin.get("/admin/rejected").get_data(as_text=True)


def test_unpublish_delete_and_retitle(world: AdminWorld, admin: FlaskClient) -> None:
    published = admin.get("/api/images").get_json()["images"]
    assert len(published) == 4  # the local photos; the ingest published none
    first, second = published[0]["id"], published[1]["id"]
    token = page_token(admin, "/admin/images")
    admin.post(
        "/admin/images/change", data={"action": "unpublish", "ids": str(first), "csrf_token": token}
    )
    assert world.status(first) == ImageStatus.QUEUED and first not in world.ctx.index.index
    hits = admin.get("/api/search?q=mountain&k=50").get_json()["results"]
    assert first not in [h["id"] for h in hits] and len(hits) == 3
    admin.post(
        "/admin/images/change", data={"action": "delete", "ids": str(second), "csrf_token": token}
    )
    assert world.status(second) == ImageStatus.DELETED and second not in world.ctx.index.index
    assert admin.get(published[1]["url"]).status_code == 404  # files removed
    admin.post(
        f"/admin/images/{first}/title", data={"title": "Renamed <i>ridge</i>", "csrf_token": token}
    )
    page = admin.get("/admin/images?status=queued").get_data(as_text=True)
    assert "Renamed &lt;i&gt;ridge&lt;/i&gt;" in page


def test_files_of_unpublished_images_are_for_admins_only(
    world: AdminWorld, admin: FlaskClient
) -> None:
    queued = world.image_of("new1")
    anonymous = world.app.test_client()
    for path in (f"/media/{queued.sha256}.{queued.extension}", f"/thumbs/400/{queued.sha256}.jpg"):
        assert anonymous.get(path).status_code == 404
        response = admin.get(path)
        assert response.status_code == 200 and "no-store" in response.headers["Cache-Control"]


def test_duplicate_pairs_offer_both_and_keep_either(world: AdminWorld, admin: FlaskClient) -> None:
    page = admin.get("/admin/duplicates").get_data(as_text=True)
    mirror = world.image_of("mirror")
    candidate = world.candidate(mirror.id)
    assert f'data-candidate="{candidate.id}"' in page and "1 to decide" in page
    matched = candidate.matched_image_id
    assert matched is not None and world.status(matched) == ImageStatus.PUBLISHED
    token = page_token(admin, "/admin/duplicates")
    keep = {"keep": "candidate", "csrf_token": token}
    # keeping the new copy publishes it: the NSFW check it skipped runs first, then confirm
    checks = admin.post(f"/admin/duplicates/{candidate.id}", data=keep)
    assert "Checks before publishing" in checks.get_data(as_text=True)
    assert world.status(mirror.id) == ImageStatus.REJECTED
    admin.post(f"/admin/duplicates/{candidate.id}", data=keep)
    assert world.status(mirror.id) == ImageStatus.PUBLISHED
    assert world.status(matched) == ImageStatus.REJECTED
    assert "0 to decide" in admin.get("/admin/duplicates").get_data(as_text=True)


def test_subscriptions_add_pause_and_run_now_hands_the_run_to_a_worker(
    world: AdminWorld, admin: FlaskClient
) -> None:
    token = page_token(admin, "/admin/subscriptions")
    form = {
        "new-subreddit": "r/Fresh",
        "new-listing": "top",
        "new-time_filter": "week",
        "new-post_limit": "25",
        "new-interval_minutes": "30",
        "csrf_token": token,
    }
    assert admin.post("/admin/subscriptions", data=form).status_code == 302
    with world.ctx.sessions() as session:
        sub = session.scalars(select(Subscription)).one()
        sub_id = sub.id
        assert (sub.subreddit, sub.listing, sub.time_filter, sub.post_limit) == (
            "Fresh",
            "top",
            "week",
            25,
        )
        assert sub.interval_minutes == 30 and sub.next_run_at is not None  # due at once
    admin.post(f"/admin/subscriptions/{sub_id}/pause", data={"csrf_token": token})
    assert "Resume" in admin.get("/admin/subscriptions").get_data(as_text=True)
    world.ctx.queue.flush()
    # Reddit holds the listing: a request that ran the ingest itself would wait on it.
    listing = hold_listings(world.fake, "Fresh")
    assert listing.release is not None
    run_path, form = f"/admin/subscriptions/{sub_id}/run", {"csrf_token": token}
    response = post_before(admin, run_path, form, listing.arrived, listing.release)
    assert response.status_code == 302
    # A paused subscription can still be run by hand: claimed, and one task for a worker.
    with world.ctx.sessions() as session:
        sub = session.get(Subscription, sub_id)
        run = session.scalars(select(IngestRun).where(IngestRun.subscription_id == sub_id)).one()
        assert sub.lease_token == run.token and run.status == "queued"
        assert sub.last_run_at is None and sub.running_since is None  # nothing ran here
    assert [(t.name, tuple(t.args)) for t in world.ctx.queue.huey.pending()] == [
        (Job.INGEST.value, (sub_id, run.token))
    ]
    assert not [r for r in world.fake.listing_requests() if r.path.startswith("/r/Fresh/")]
    page = admin.get("/admin/subscriptions").get_data(as_text=True)
    assert "Claimed by web:owner, waiting for a worker" in page


def test_dashboard_shows_the_numbers_of_the_ingest(world: AdminWorld, admin: FlaskClient) -> None:
    page = admin.get("/admin/").get_data(as_text=True)
    with world.ctx.sessions() as session:
        queued = session.scalar(
            select(func.count())
            .select_from(Candidate)
            .where(Candidate.state == CandidateState.QUEUED)
        )
    assert int(stat(page, "stat-queue")) == 5 == queued
    assert int(stat(page, "stat-published")) == 4
    table = page.split('id="daily-counts"')[1].split("</table>")[0]
    assert '<td data-decision="queued">5</td>' in table
    assert '<td data-decision="rejected">2</td>' in table
    assert "rejected: duplicate_phash 1" in table and "rejected: too_small 1" in table
    chart = admin.get("/admin/charts/daily.png")
    assert chart.status_code == 200 and chart.data.startswith(b"\x89PNG")
    # after two reviews the agreement rate is real too: a pipeline rejection the admin upheld
    # and one the admin overturned
    token = page_token(admin, "/admin/rejected")
    tiny = {"ids": str(world.image_of("tiny").id), "csrf_token": token}
    admin.post("/admin/publish", data=tiny)  # runs the NSFW check it skipped: then confirm
    admin.post("/admin/publish", data=tiny)
    mirror = world.image_of("mirror").id
    admin.post("/admin/decide", data={"act": f"reject:duplicate:{mirror}", "csrf_token": token})
    page = admin.get("/admin/").get_data(as_text=True)
    assert stat(page, "stat-agreement") == "50%"


def test_dashboard_charts_and_drift_alert_once_a_gallery_model_exists(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    overrides = {"gmm_min_reference": 4, "drift_min_candidates": 1, "drift_ks_threshold": 0.01}
    with admin_world(tmp_path, db_url, photos, tiny_embedder, **overrides) as world:
        assert world.summary.refitted  # 4 references: the ingest fitted a model first
        admin = world.app.test_client()
        assert log_in(admin) == 302
        page = admin.get("/admin/").get_data(as_text=True)
        ks = float(stat(page, "stat-ks"))
        assert 0 < ks <= 1
        assert "drift from the reference set: KS statistic" in page  # over the 0.01 threshold
        assert "BIC of the current model" in page and "No model fitted yet" not in page
        for chart in ("scores", "bic"):
            response = admin.get(f"/admin/charts/{chart}.png")
            assert response.status_code == 200 and response.data.startswith(b"\x89PNG")


def test_queue_shows_a_possible_duplicate_beside_the_image_it_resembles(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    # Every CLIP similarity queues as a possible duplicate (and none rejects).
    overrides = {"clip_duplicate_similarity": 1.01, "clip_duplicate_borderline": -1.0}
    with admin_world(tmp_path, db_url, photos, tiny_embedder, **overrides) as world:
        admin = world.app.test_client()
        assert log_in(admin) == 302
        with world.ctx.sessions() as session:
            items = review_queue(session)
        assert len(items) == 5 and all(i.matched is not None for i in items)
        # most uncertain first: the margins of the clip_duplicate band, ascending
        margins = [i.margin for i in items]
        assert margins == sorted(margins) and margins[0] < 2
        page = admin.get("/admin/queue").get_data(as_text=True)
        for item in items:
            card = page.split(f'data-id="{item.image.id}"')[1].split("</article>")[0]
            assert 'class="matched"' in card and f"image {item.matched.id}</a>" in card
            assert f"clip_duplicate {item.match_result['score']:.3f}" in card


def test_an_approval_that_grows_the_reference_set_enough_queues_a_refit_for_a_worker(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    from scenery.curation.artifacts import latest_meta
    from scenery.housekeeping import handlers

    # 4 references, minimum 5: cold start until one approval reaches the minimum.
    with admin_world(tmp_path, db_url, photos, tiny_embedder, gmm_min_reference=5) as world:
        settings, queue = world.ctx.settings, world.ctx.queue
        assert not world.summary.refitted and latest_meta(settings, "gmm") is None
        queue.flush()
        admin = world.app.test_client()
        assert log_in(admin) == 302
        token = page_token(admin, "/admin/queue")
        image_id = queued_ids(world)[0]
        admin.post("/admin/decide", data={"act": f"approve:{image_id}", "csrf_token": token})
        # The web process only asks: one refit task waits and no model was fitted here.
        assert [t.name for t in queue.huey.pending()] == [Job.REFIT.value]
        assert latest_meta(settings, "gmm") is None
        # The task, run with the handlers a worker serves, fits the model from 5 references.
        queue.serve(handlers(world.ctx))
        queue.huey.execute(queue.huey.dequeue())
        meta = latest_meta(settings, "gmm")
        assert meta is not None and meta["n_reference"] == 5
