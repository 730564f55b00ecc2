"""Database tables: images, embeddings, Reddit posts and candidates, admin accounts, feeds."""

from __future__ import annotations

import builtins
import enum
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
@overload
def as_utc(moment: datetime | None) -> datetime | None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """Attach UTC to datetimes read back naive (SQLite keeps no time zone)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    moment = as_utc(moment)
    return moment.isoformat() if moment else None


class Base(DeclarativeBase):
    pass


class ImageStatus(enum.StrEnum):
    PUBLISHED = "published"
    QUEUED = "queued"
    REJECTED = "rejected"
    DELETED = "deleted"


class Image(Base):
    """One stored original, wherever it came from."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))
    phash: Mapped[str] = mapped_column(String(64))
    # The leading named colour and every named colour's share (``scenery.colours``)
    colour: Mapped[str | None] = mapped_column(String(16), index=True)
    colour_shares: Mapped[builtins.bytes | None] = mapped_column(LargeBinary)
    title: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ImageStatus] = mapped_column(
        Enum(ImageStatus, name="image_status", values_callable=lambda e: [m.value for m in e]),
        index=True,
    )

    source: Mapped[str] = mapped_column(String(16), default="local")
    source_name: Mapped[str | None] = mapped_column(Text)  # file name for local imports
    reddit_subreddit: Mapped[str | None] = mapped_column(String(64))
    reddit_post_id: Mapped[str | None] = mapped_column(String(32), index=True)
    reddit_permalink: Mapped[str | None] = mapped_column(Text)
    reddit_author: Mapped[str | None] = mapped_column(String(64))
    reddit_title: Mapped[str | None] = mapped_column(Text)
    reddit_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    curation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when a rejected image's files were dropped after the retention period (row kept).
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    embeddings: Mapped[list[Embedding]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )
    tags: Mapped[list[ImageTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )

    __table_args__ = (Index("ix_images_status_published_at", "status", "published_at"),)

    @property
    def display_title(self) -> str:
        """The best title there is: Reddit's, the given one, or the file name."""
        return self.title or self.reddit_title or self.source_name or f"Image {self.id}"

    @property
    def extension(self) -> str:
        return self.path.rsplit(".", 1)[-1]


class ImageTag(Base):
    """An auto tag of an image (``scenery.tags``) with its zero-shot probability."""

    __tablename__ = "image_tags"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(48), primary_key=True, index=True)
    score: Mapped[float] = mapped_column(Float)


class Embedding(Base):
    """An image's CLIP embedding for one model: L2-normalised float32 bytes."""

    __tablename__ = "embeddings"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[Image] = relationship(back_populates="embeddings")


class PublicationEvent(Base):
    """One change to whether an image is published; vector indexes replay these to catch up."""

    __tablename__ = "publication_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(Integer, index=True)
    published: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class PostOutcome(enum.StrEnum):
    PENDING = "pending"  # seen; its images are not all decided yet
    DONE = "done"  # every image of the post has a decision
    SKIPPED = "skipped"  # the post gives no image (video, self post, nsfw...): see reason
    FAILED = "failed"  # resolution failed for a reason that may pass (API down): retried later


class Post(Base):
    """A Reddit post the ingest has seen, with what came of it."""

    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fullname: Mapped[str] = mapped_column(String(32), unique=True)
    subreddit: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(64))
    permalink: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    score: Mapped[int] = mapped_column(Integer, default=0)
    flair: Mapped[str | None] = mapped_column(Text)
    over_18: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[PostOutcome] = mapped_column(
        Enum(PostOutcome, name="post_outcome", values_callable=lambda e: [m.value for m in e]),
        index=True,
    )
    reason: Mapped[str | None] = mapped_column(Text)
    # A FAILED post's resolution is tried again: after ``retry_at`` (an API that failed), or
    # once the setting ``needs`` names is set (a missing API key).
    resolve_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    needs: Mapped[str | None] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    candidates: Mapped[list[Candidate]] = relationship(
        back_populates="post", cascade="all, delete-orphan", order_by="Candidate.position"
    )


class CandidateState(enum.StrEnum):
    PENDING = "pending"  # not yet downloaded or decided
    PUBLISHED = "published"
    QUEUED = "queued"
    REJECTED = "rejected"
    FAILED = "failed"  # could not be downloaded or decoded: see reason


class Candidate(Base):
    """One image file a post points at, and the decision taken on it."""

    __tablename__ = "candidates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer, default=0)
    url: Mapped[str] = mapped_column(Text)
    url_hash: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the URL
    state: Mapped[CandidateState] = mapped_column(
        Enum(
            CandidateState, name="candidate_state", values_callable=lambda e: [m.value for m in e]
        ),
        index=True,
    )
    reason: Mapped[str | None] = mapped_column(Text)  # the deciding reasons, for people
    reason_code: Mapped[str | None] = mapped_column(String(64), index=True)  # for tallies
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), index=True
    )
    matched_image_id: Mapped[int | None] = mapped_column(Integer)  # the duplicate it matched
    filters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # not before
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The admin's later decision ("approved", "rejected" or "unpublished"), with the label a
    # rejection gives: what the models learn from and what their agreement is measured against.
    review: Mapped[str | None] = mapped_column(String(16))
    review_reason: Mapped[str | None] = mapped_column(String(64))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    post: Mapped[Post] = relationship(back_populates="candidates")

    __table_args__ = (UniqueConstraint("post_id", "key", name="uq_candidates_post_key"),)


class AdminUser(Base):
    """A person who may use /admin; the password is kept only as an Argon2id hash."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AdminSession(Base):
    """A login: the cookie carries a random token whose SHA-256 is ``id``. Logout sets
    ``ended_at``; a session also ends after an idle and an absolute lifetime."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("admin_users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    address: Mapped[str | None] = mapped_column(String(64))


class LoginThrottle(Base):
    """Failed logins in a row for one key (a user name, or a client address), and any lock."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Subscription(Base):
    """A subreddit the gallery follows: which listing, how many posts, how often."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subreddit: Mapped[str] = mapped_column(String(64))
    listing: Mapped[str] = mapped_column(String(16), default="new")
    time_filter: Mapped[str | None] = mapped_column(String(8))
    post_limit: Mapped[int] = mapped_column(Integer, default=100)
    interval_minutes: Mapped[int] = mapped_column(Integer, default=60)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The last run: when it started and ended, how it went, what it counted.
    running_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[str | None] = mapped_column(String(16))  # ok, failed
    last_error: Mapped[str | None] = mapped_column(Text)
    last_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The schedule: due when next_run_at has passed and no live lease is held. A claim writes
    # the lease (one compare-and-set update); the run renews it; an expired lease is free.
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String(128))  # a worker id, or cli:host:pid
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("subreddit", "listing", "time_filter", name="uq_subscriptions_feed"),
    )


class IngestRun(Base):
    """One ingest run, scheduled or from the CLI: its claim, lease, end and summary."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)  # also its download folder
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="SET NULL"), index=True
    )
    subreddits: Mapped[str] = mapped_column(Text)  # comma-separated
    owner: Mapped[str | None] = mapped_column(String(128))  # who claimed it
    worker: Mapped[str | None] = mapped_column(String(128))  # who runs it
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # queued, running, ok, failed, interrupted (handed back), lost (lease expired), superseded
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Worker(Base):
    """A worker process's heartbeat: who it is, when it was last seen, what it is doing."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid:random
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    scheduler: Mapped[bool] = mapped_column(Boolean, default=False)
    threads: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    task: Mapped[str | None] = mapped_column(Text)  # the tasks in hand, for people
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TaskFailure(Base):
    """A task that raised, with its error: the dashboard's and `scenery status`'s last failures."""

    __tablename__ = "task_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    args: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
