"""Admin login sessions kept on the server, so that logging out ends them.

The browser's cookie carries a random token; the database keeps only its SHA-256 (a copy of
the table opens no session). A session ends at logout, after ``idle`` without a request,
``lifetime`` after the login however busy, and when the account's password is set again.
``last_seen_at`` is written at most every ``touch_every``, not on every request, so the
idle limit holds to within that much.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from scenery.config import Settings
from scenery.models import AdminSession, AdminUser, as_utc

TOKEN_BYTES = 32
# Ended and expired rows stay this long (who logged in, from where, when), then are pruned.
KEEP = timedelta(days=7)


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    lifetime: timedelta

    @classmethod
    def of(cls, settings: Settings) -> SessionPolicy:
        return cls(
            timedelta(minutes=settings.session_idle_minutes),
            timedelta(hours=settings.session_max_hours),
        )

    @property
    def touch_every(self) -> timedelta:
        """How stale ``last_seen_at`` may get before a request writes it again."""
        return min(timedelta(minutes=1), self.idle / 4)


@dataclass(frozen=True)
class LiveSession:
    """A session that is still open, with its account."""

    id: str
    user_id: int
    username: str
    last_seen_at: datetime


def digest(token: str) -> str:
    """The stored id of the session a cookie's token opens."""
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, user_id: int, *, address: str | None, now: datetime) -> str:
    """Open a session for ``user_id`` and return its token, for the cookie only."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        AdminSession(
            id=digest(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            address="".join(c for c in address or "" if c.isprintable())[:64] or None,
        )
    )
    session.flush()
    return token


def check(session: Session, token: str, policy: SessionPolicy, now: datetime) -> LiveSession | None:
    """The open session ``token`` belongs to, or None: unknown, ended, idle or too old."""
    if not token or len(token) > 128:
        return None
    row = session.execute(
        select(AdminSession, AdminUser.username)
        .join(AdminUser, AdminUser.id == AdminSession.user_id)
        .where(AdminSession.id == digest(token), AdminSession.ended_at.is_(None))
    ).one_or_none()
    if row is None:
        return None
    found, username = row
    created, seen = as_utc(found.created_at), as_utc(found.last_seen_at)
    assert created is not None and seen is not None  # NOT NULL columns
    if now - seen >= policy.idle or now - created >= policy.lifetime:
        return None
    return LiveSession(found.id, found.user_id, username, seen)


def touch_due(live: LiveSession, policy: SessionPolicy, now: datetime) -> bool:
    return now - live.last_seen_at >= policy.touch_every


def touch(session: Session, live: LiveSession, policy: SessionPolicy, now: datetime) -> None:
    """Record that the session was used now (skipped when another request just did)."""
    session.execute(
        update(AdminSession)
        .where(
            AdminSession.id == live.id,
            AdminSession.ended_at.is_(None),
            AdminSession.last_seen_at <= now - policy.touch_every,
        )
        .values(last_seen_at=now)
    )


def end(session: Session, token: str, now: datetime) -> bool:
    """End the session ``token`` opens (logout); False when it was not open."""
    result = session.execute(
        update(AdminSession)
        .where(AdminSession.id == digest(token), AdminSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def end_all_for_user(session: Session, user_id: int, now: datetime) -> int:
    """End every open session of an account (its password was set again); return how many."""
    result = session.execute(
        update(AdminSession)
        .where(AdminSession.user_id == user_id, AdminSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def prune(session: Session, policy: SessionPolicy, now: datetime) -> int:
    """Delete sessions that ended, went idle or grew too old more than ``KEEP`` ago."""
    cutoff = now - KEEP
    result = session.execute(
        delete(AdminSession).where(
            or_(
                AdminSession.ended_at < cutoff,
                AdminSession.last_seen_at < cutoff - policy.idle,
                AdminSession.created_at < cutoff - policy.lifetime,
            )
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
