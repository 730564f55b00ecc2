"""Admin accounts: Argon2id password hashes, and throttling of failed logins.

A key (the user name tried, and separately the client's address) that fails ``max_failures``
times in a row is locked for ``lock_seconds``; a success clears both counts. Counts
live in the database, so every web worker sees the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from scenery.errors import SceneryError
from scenery.models import AdminUser, LoginThrottle, as_utc, utcnow

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


def create_user(session: Session, username: str, password: str) -> AdminUser:
    """Add an admin, or set a new password for an existing one."""
    name = normalise_username(username)
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"passwords need at least {MIN_PASSWORD} characters")
    user = session.scalars(select(AdminUser).where(AdminUser.username == name)).one_or_none()
    if user is None:
        user = AdminUser(username=name, password_hash=HASHER.hash(password))
        session.add(user)
    else:
        user.password_hash = HASHER.hash(password)
    session.flush()
    return user


def authenticate(
    session: Session,
    username: str,
    password: str,
    client: str,
    *,
    max_failures: int,
    lock_seconds: int,
    now: datetime | None = None,
) -> LoginResult:
    """Check a login attempt against the throttle and the stored hash; record the outcome.
    ``now`` (default: the real time) is the time the throttle reads."""
    name = username.strip().lower()[:64]
    keys = [f"user:{name}", f"addr:{client}"[:160]]
    now = utcnow() if now is None else now
    rows = [session.get(LoginThrottle, key) or LoginThrottle(key=key, failures=0) for key in keys]
    locks = [as_utc(r.locked_until) for r in rows if r.locked_until]
    active = [lock for lock in locks if lock and lock > now]
    if active:
        return LoginResult(None, max(active))
    user = session.scalars(select(AdminUser).where(AdminUser.username == name)).one_or_none()
    if user is not None and _verify(user, password):
        user.last_login_at = now
        for row in rows:
            if row in session:
                session.delete(row)
        return LoginResult(user)
    if user is None:
        _verify(None, password)
    locked_until = None
    for row in rows:
        row.failures = (row.failures or 0) + 1
        row.last_failure_at = now
        if row.failures >= max_failures:
            row.locked_until = locked_until = now + timedelta(seconds=lock_seconds)
            row.failures = 0
        session.add(row)
    return LoginResult(None, locked_until)


def _verify(user: AdminUser | None, password: str) -> bool:
    try:
        HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    if user is not None and HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    return user is not None
