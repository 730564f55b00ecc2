"""Admin accounts: Argon2id password hashes, and logins checked against the throttle.

Failed logins are throttled per user name and client address (``scenery.throttle``).
Setting a new password ends every session of the account (``scenery.sessions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scenery import sessions as login_sessions
from scenery.db import transaction
from scenery.errors import SceneryError
from scenery.models import AdminUser, utcnow
from scenery.throttle import ThrottlePolicy, clear, record_attempt

HASHER = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106 low-memory profile
MIN_PASSWORD = 8
# Verified when the user name is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = HASHER.hash("not a password anyone has")


class AccountError(SceneryError):
    """A user name or password that cannot be used."""


@dataclass(frozen=True)
class LoginResult:
    user: AdminUser | None
    locked_until: datetime | None = None  # set when throttled

    @property
    def ok(self) -> bool:
        return self.user is not None


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise AccountError("user names are 1-64 letters, digits, '.', '_' or '-'")
    return name


@dataclass(frozen=True)
class AccountChange:
    user: AdminUser
    created: bool  # False: a new password for an existing admin, logged out everywhere


def create_user(
    session: Session, username: str, password: str, *, now: datetime | None = None
) -> AccountChange:
    """Add an admin, or set a new password for an existing one, which ends every session
    of that account (on every browser)."""
    name = normalise_username(username)
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"passwords need at least {MIN_PASSWORD} characters")
    user = _user(session, name)
    if user is None:
        user = AdminUser(username=name, password_hash=HASHER.hash(password))
        session.add(user)
        session.flush()
        return AccountChange(user, created=True)
    user.password_hash = HASHER.hash(password)
    login_sessions.end_all_for_user(session, user.id, utcnow() if now is None else now)
    session.flush()
    return AccountChange(user, created=False)


def authenticate(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    client: str,
    *,
    policy: ThrottlePolicy,
    now: datetime | None = None,
) -> LoginResult:
    """Check a login attempt against the throttle and the stored hash; record the outcome.
    ``now`` (default: the real time) is the time the throttle reads.

    Two short transactions, not one: the slow hash is checked between them, so the
    database's write lock (SQLite) and the throttle's rows are not held while it runs."""
    try:
        name: str | None = normalise_username(username)
    except AccountError:  # no account can have it; its attempts are counted under "*"
        name = None
    now = utcnow() if now is None else now
    with transaction(sessions) as session:
        attempt = record_attempt(session, name or "*", client, policy, now)
        if attempt.refused:
            return LoginResult(None, attempt.locked_until)
        user = _user(session, name) if name else None
        stored = user.password_hash if user is not None else None
    if not _verify(stored, password):  # hashes even for an unknown name: same time
        return LoginResult(None, attempt.locked_until)
    assert name is not None  # only a real account's hash verifies
    with transaction(sessions) as session:
        user = _user(session, name)
        if user is None or user.password_hash != stored:  # removed or changed meanwhile
            return LoginResult(None, attempt.locked_until)
        clear(session, attempt, now)
        user.last_login_at = now
        if HASHER.check_needs_rehash(stored):
            user.password_hash = HASHER.hash(password)
        return LoginResult(user)


def _user(session: Session, name: str) -> AdminUser | None:
    return session.scalars(select(AdminUser).where(AdminUser.username == name)).one_or_none()


def _verify(stored: str | None, password: str) -> bool:
    """Check ``password`` against a hash; an unknown user costs as much time as a known one."""
    try:
        HASHER.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None
