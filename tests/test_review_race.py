"""Decisions that cannot overwrite each other, files that go only after their commit, and
decisions that say who made them (admin pages and CLI alike)."""

from __future__ import annotations

import getpass
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from scenery.cli import main
from scenery.config import Settings
from scenery.context import Context
from scenery.curation.monitoring import agreement
from scenery.db import transaction
from scenery.library import get_image, set_status
from scenery.models import Candidate, CandidateState, Image, ImageStatus, PostOutcome, utcnow
from scenery.models import Post as PostRow
from scenery.retention import purge_rejected_files
from scenery.review import ReviewError, approve, delete, reject, remove_files, unpublish
from tests.fakes.embedders import ColourEmbedder
from tests.helpers import PALETTE, failing_commit, import_colours

POSTGRES_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
ROUNDS = 12


def attach_candidate(ctx: Context, image_id: int, state: CandidateState) -> int:
    """A Reddit post and candidate that decided ``image_id``, as the pipeline leaves them."""
    with transaction(ctx.sessions) as session:
        post = PostRow(
            fullname=f"t3_x{image_id}",
            subreddit="EarthPorn",
            title="a photo",
            permalink=f"/r/EarthPorn/comments/x{image_id}/",
            created_at=utcnow(),
            outcome=PostOutcome.DONE,
        )
        candidate = Candidate(
            key="0",
            url=f"https://i.redd.it/x{image_id}.jpg",
            url_hash=f"{image_id:064x}",
            state=state,
            filters=[{"filter": "gallery_fit", "verdict": "pass", "score": 0.9}],
            image_id=image_id,
        )
        post.candidates.append(candidate)
        session.add(post)
        session.flush()
        return candidate.id


def files_of(ctx: Context, image_id: int) -> Path:
    with ctx.sessions() as session:
        image = session.get(Image, image_id)
        assert image is not None
        return ctx.settings.root / image.path


@POSTGRES_ONLY
def test_approve_racing_delete_ends_consistent_every_time(
    settings: Settings, tmp_path: Path
) -> None:
    """Two admins, one approving and one deleting the same queued image at the same moment,
    each in its own transaction and connection: whichever goes first, the image ends deleted
    with its files gone, never published without files."""
    colours = {f"c{n}": (n * 20, 255 - n * 20, 90) for n in range(ROUNDS)}
    ctx = Context(settings, embedder=ColourEmbedder())
    ctx.migrate()
    ids = import_colours(ctx, tmp_path / "in", colours)
    with transaction(ctx.sessions) as session:
        for image_id in ids.values():
            set_status(session, get_image(session, image_id), ImageStatus.QUEUED)
    refused = 0
    for image_id in ids.values():
        start = threading.Barrier(2)
        outcome: dict[str, object] = {}

        def approver(
            image_id: int = image_id,
            start: threading.Barrier = start,
            outcome: dict[str, object] = outcome,
        ) -> None:
            start.wait()
            try:
                with transaction(ctx.sessions) as session:
                    approve(session, [image_id], "alice")
                outcome["approve"] = "done"
            except ReviewError:
                outcome["approve"] = "refused"

        def deleter(
            image_id: int = image_id,
            start: threading.Barrier = start,
            outcome: dict[str, object] = outcome,
        ) -> None:
            start.wait()
            with transaction(ctx.sessions) as session:
                files = delete(session, [image_id], "bob")
            remove_files(ctx.storage, files)
            outcome["delete"] = "done"

        threads = [threading.Thread(target=approver), threading.Thread(target=deleter)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert outcome.get("delete") == "done", outcome
        refused += outcome["approve"] == "refused"
        with ctx.sessions() as session:
            image = session.get(Image, image_id)
            assert image is not None
            assert image.status == ImageStatus.DELETED and image.purged_at is not None, (
                image_id,
                image.status,
                outcome,
            )
        assert not files_of(ctx, image_id).exists()
    ctx.index.refresh(force=True)
    assert not set(ctx.index.index.ids) & set(ids.values())
    ctx.close()


def test_a_decision_sees_what_was_committed_after_its_session_first_read(
    settings: Settings, tmp_path: Path
) -> None:
    """A session that read an image before another one deleted it must not approve the stale
    copy it holds."""
    ctx = Context(settings, embedder=ColourEmbedder())
    ctx.migrate()
    ids = import_colours(ctx, tmp_path / "in", {"red": PALETTE["red"]})
    with ctx.sessions() as stale:
        held = stale.get(Image, ids["red"])
        assert held is not None and held.status == ImageStatus.PUBLISHED
        stale.commit()  # its read transaction ends; the object stays in the session
        with transaction(ctx.sessions) as other:
            remove_files(ctx.storage, delete(other, [ids["red"]], "bob"))
        with stale.begin(), pytest.raises(ReviewError, match="deleted"):
            approve(stale, [ids["red"]], "alice")
    ctx.close()


def test_retention_drops_files_only_after_its_commit(settings: Settings, tmp_path: Path) -> None:
    ctx = Context(settings, embedder=ColourEmbedder())
    ctx.migrate()
    ids = import_colours(ctx, tmp_path / "in", {"red": PALETTE["red"]})
    with transaction(ctx.sessions) as session:
        reject(session, [ids["red"]], "low_quality", "alice")
        image = session.get(Image, ids["red"])
        assert image is not None
        image.created_at = utcnow() - timedelta(days=40)
    original = files_of(ctx, ids["red"])
    lost = OperationalError("COMMIT", {}, Exception("server closed the connection"))
    with failing_commit(ctx, lambda: lost), pytest.raises(OperationalError):
        purge_rejected_files(ctx, 30)
    assert original.exists()  # the purge did not happen: the files stay with the row
    with ctx.sessions() as session:
        assert session.scalar(select(Image.purged_at).where(Image.id == ids["red"])) is None
    assert purge_rejected_files(ctx, 30) == 1
    assert not original.exists()
    ctx.close()


def test_unpublish_records_who_decided_and_counts_as_a_disagreement(
    settings: Settings, tmp_path: Path
) -> None:
    ctx = Context(settings, embedder=ColourEmbedder())
    ctx.migrate()
    ids = import_colours(ctx, tmp_path / "in", {"red": PALETTE["red"]})
    attach_candidate(ctx, ids["red"], CandidateState.PUBLISHED)
    with transaction(ctx.sessions) as session:
        assert [i.id for i in unpublish(session, [ids["red"]], "alice")] == [ids["red"]]
    with ctx.sessions() as session:
        candidate = session.scalars(select(Candidate)).one()
        assert (candidate.review, candidate.reviewed_by) == ("unpublished", "alice")
        assert candidate.reviewed_at is not None
        figures = agreement(session)
    # The pipeline published it; the admin took it down: one review, no agreement.
    assert (figures.reviewed, figures.agreed) == (1, 0)
    assert figures.by_filter["gallery_fit"] == (0, 1)
    ctx.close()


@pytest.mark.parametrize("command", ["publish", "unpublish", "delete"])
def test_cli_decisions_are_recorded_as_the_login_user(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    ctx = Context(settings, embedder=ColourEmbedder())
    ctx.migrate()
    ids = import_colours(ctx, tmp_path / "in", {"red": PALETTE["red"]})
    if command == "publish":
        with transaction(ctx.sessions) as session:
            reject(session, [ids["red"]], "off_topic", "alice")
    attach_candidate(ctx, ids["red"], CandidateState.QUEUED)
    monkeypatch.setenv("SCENERY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SCENERY_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("SCENERY_CLIP_MODEL", "tiny-test")
    monkeypatch.setattr(getpass, "getuser", lambda: "carol")
    result = CliRunner().invoke(main, [command, str(ids["red"])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with ctx.sessions() as session:
        candidate = session.scalars(select(Candidate)).one()
    expected = {"publish": "approved", "unpublish": "unpublished", "delete": "rejected"}
    assert (candidate.review, candidate.reviewed_by) == (expected[command], "cli:carol")
    ctx.close()
