"""Throttling of failed logins that an attacker cannot turn against the owner.

Failures are counted under three keys, in the database so that every web worker sees them:

* ``pair:<address>|<name>``: one user name tried from one address. After ``pair_failures``
  in a row the pair is locked for ``lock``, twice as long after each further failure, up to
  ``lock_max``. Guessing from one address is slowed down; the owner, from another address,
  is not locked out.
* ``addr:<address>``: every name tried from one address, so that one address cannot spray
  many names; locked the same growing way after ``address_failures``.
* ``user:<name>``: every address trying one name. A much higher ceiling against guessing
  spread over many addresses; its lock lasts ``lock`` and does not grow, so holding it
  costs a distributed attacker ``user_failures`` fresh failures every ``lock``.

An attempt is counted as a failure *before* its password is checked and the count is taken
back on success: parallel guesses cannot all slip through before the first one is counted,
and the slow hash runs outside the database's write lock. A success clears the pair, the
address and the name. Counts untouched for ``FORGET`` start again from zero.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scenery.config import Settings
from scenery.models import LoginThrottle, as_utc

FORGET = timedelta(days=1)


@dataclass(frozen=True)
class ThrottlePolicy:
    pair_failures: int
    address_failures: int
    user_failures: int
    lock: timedelta
    lock_max: timedelta

    @classmethod
    def of(cls, settings: Settings) -> ThrottlePolicy:
        return cls(
            settings.login_max_failures,
            settings.login_address_max_failures,
            settings.login_user_max_failures,
            timedelta(seconds=settings.login_lock_seconds),
            timedelta(seconds=max(settings.login_lock_max_seconds, settings.login_lock_seconds)),
        )

    def growing_lock(self, failures: int, limit: int) -> timedelta:
        """The lock after ``failures`` in a row where ``limit`` is the first that locks."""
        doublings = min(max(failures - limit, 0), 32)  # 2**32 locks outlast any lock_max
        return min(self.lock * (1 << doublings), self.lock_max)


@dataclass(frozen=True)
class Attempt:
    """A login attempt counted as a failure until ``clear`` takes it back."""

    keys: tuple[str, ...]
    locked_until: datetime | None  # refused (still locked), or locked by this attempt

    @property
    def refused(self) -> bool:
        return not self.keys


def address_key(address: str) -> str:
    """The part of a client address that is throttled: an IPv6 client is its /64 network
    (one subscriber's share), an IPv4-mapped IPv6 address is the IPv4 one."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return "".join(c for c in address if c.isprintable() and c != "|")[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def keys_for(name: str, address: str) -> tuple[str, str, str]:
    addr = address_key(address)
    return f"pair:{addr}|{name}", f"addr:{addr}", f"user:{name}"


def record_attempt(
    session: Session, name: str, address: str, policy: ThrottlePolicy, now: datetime
) -> Attempt:
    """Refuse an attempt while any of its keys is locked; otherwise count it as a failure
    (locking the keys it takes over their limits) and return the keys to clear on success."""
    pair, addr, user = keys = keys_for(name, address)
    rows = _locked_rows(session, keys)
    active = [t for r in rows.values() if (t := as_utc(r.locked_until)) is not None and t > now]
    if active:
        return Attempt((), max(active))
    locks: list[datetime] = []
    limits = {pair: policy.pair_failures, addr: policy.address_failures}
    for key, row in rows.items():
        last = as_utc(row.last_failure_at)
        if last is None or now - last >= FORGET:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        if key == user and row.failures >= policy.user_failures:
            row.locked_until = now + policy.lock
            row.failures = 0  # a ceiling, not a ratchet: it must be reached again
        elif key in limits and row.failures >= limits[key]:
            row.locked_until = now + policy.growing_lock(row.failures, limits[key])
        else:
            continue
        locks.append(row.locked_until)
    return Attempt(keys, max(locks) if locks else None)


def clear(session: Session, attempt: Attempt, now: datetime) -> None:
    """Take back a successful attempt: its keys start again from zero; and drop rows that
    nobody has failed under for ``FORGET`` and that hold no lock."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(attempt.keys)))
    session.execute(
        delete(LoginThrottle).where(
            or_(
                LoginThrottle.last_failure_at.is_(None),
                LoginThrottle.last_failure_at < now - FORGET,
            ),
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
    )


def _locked_rows(session: Session, keys: tuple[str, ...]) -> dict[str, LoginThrottle]:
    """The keys' rows, created where missing, locked until the transaction ends (in key
    order, so that two attempts sharing keys cannot deadlock)."""
    ordered = sorted(keys)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(LoginThrottle)
        .values([{"key": key, "failures": 0} for key in ordered])
        .on_conflict_do_nothing(index_elements=["key"])
    )
    found = session.scalars(
        select(LoginThrottle)
        .where(LoginThrottle.key.in_(ordered))
        .order_by(LoginThrottle.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    return {row.key: row for row in found}
