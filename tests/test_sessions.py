"""Admin sessions live on the server: logout, idleness, age and a new password end them, and
a copy of the cookie opens nothing afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from scenery import sessions as login_sessions
from scenery.cli import main
from scenery.config import Settings
from scenery.db import transaction
from scenery.embed import OpenClipEmbedder
from scenery.models import AdminSession, AdminUser, as_utc
from scenery.sessions import SessionPolicy
from tests.auth_app import ADMIN, PASSWORD, START, AuthApp, auth_app, log_in, opens_admin
from tests.helpers import csrf_token


@pytest.fixture
def gate(settings: Settings, tiny_embedder: OpenClipEmbedder) -> Iterator[AuthApp]:
    with auth_app(settings, tiny_embedder) as built:
        yield built


def rows(gate: AuthApp) -> list[AdminSession]:
    with gate.ctx.sessions() as session:
        found = list(session.scalars(select(AdminSession).order_by(AdminSession.created_at)))
        session.expunge_all()
        return found


def test_a_cookie_saved_before_logout_no_longer_opens_admin(gate: AuthApp) -> None:
    browser = gate.client()
    assert log_in(browser) == 302 and opens_admin(browser)
    saved = browser.get_cookie("session")
    assert saved is not None
    token = csrf_token(browser, "/admin/")
    assert browser.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert not opens_admin(browser)
    # someone who copied the cookie before the logout replays it
    thief = gate.client()
    thief.set_cookie("session", saved.value)
    assert not opens_admin(thief)
    (row,) = rows(gate)
    assert as_utc(row.ended_at) == START


def test_the_cookie_carries_a_token_the_database_keeps_only_hashed(gate: AuthApp) -> None:
    browser = gate.client("198.51.100.7")
    assert log_in(browser) == 302
    with browser.session_transaction() as cookie:
        token = cookie["_user_id"]
    (row,) = rows(gate)
    assert row.id == hashlib.sha256(token.encode()).hexdigest() != token
    assert row.address == "198.51.100.7"
    # a token of the right shape that was never issued opens nothing
    forged = gate.client("198.51.100.7")
    assert log_in(forged) == 302
    with forged.session_transaction() as cookie:
        cookie["_user_id"] = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert not opens_admin(forged)


def test_a_session_ends_after_an_hour_without_requests(gate: AuthApp) -> None:
    assert gate.ctx.settings.session_idle_minutes == 60  # the default
    browser = gate.client()
    assert log_in(browser) == 302
    for _ in range(3):  # each request within the hour keeps it open
        gate.clock.advance(minutes=59)
        assert opens_admin(browser)
    gate.clock.advance(minutes=60)
    assert not opens_admin(browser)
    assert log_in(browser) == 302 and opens_admin(browser)  # a new login opens a new one


def test_a_busy_session_ends_twelve_hours_after_login(gate: AuthApp) -> None:
    assert gate.ctx.settings.session_max_hours == 12  # the default
    browser = gate.client()
    assert log_in(browser) == 302
    for _ in range(14):  # 14 x 50 min = 11 h 40 min, never idle
        gate.clock.advance(minutes=50)
        assert opens_admin(browser)
    gate.clock.advance(minutes=19)
    assert opens_admin(browser)  # 11 h 59 min
    gate.clock.advance(minutes=1)
    assert not opens_admin(browser)


def test_last_seen_is_written_at_most_once_a_minute(gate: AuthApp) -> None:
    browser = gate.client()
    assert log_in(browser) == 302
    gate.clock.advance(30)
    assert opens_admin(browser)
    assert as_utc(rows(gate)[0].last_seen_at) == START  # not written again after 30 s
    gate.clock.advance(31)
    assert opens_admin(browser)
    assert as_utc(rows(gate)[0].last_seen_at) == gate.clock.now


def test_a_new_password_ends_every_session_of_the_account(
    gate: AuthApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop, phone = gate.client("192.0.2.1"), gate.client("192.0.2.2")
    assert log_in(laptop) == 302 and log_in(phone) == 302
    settings = gate.ctx.settings
    monkeypatch.setenv("SCENERY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SCENERY_DATABASE_URL", settings.db_url)
    result = CliRunner().invoke(
        main, ["admin", "create", ADMIN, "--password-stdin"], input="a brand new password\n"
    )
    assert result.exit_code == 0, result.output
    assert "owner is logged out of every browser" in result.output
    assert not opens_admin(laptop) and not opens_admin(phone)
    assert log_in(laptop, ADMIN, PASSWORD) == 401
    assert log_in(laptop, ADMIN, "a brand new password") == 302 and opens_admin(laptop)


def test_login_prunes_sessions_over_a_week_past_their_end(gate: AuthApp) -> None:
    policy = SessionPolicy.of(gate.ctx.settings)
    with transaction(gate.ctx.sessions) as session:
        user_id = session.scalars(select(AdminUser.id)).one()
        old = login_sessions.start(session, user_id, address=None, now=START)
        login_sessions.end(session, old, START)
        login_sessions.start(session, user_id, address=None, now=START)  # left to go idle
    gate.clock.advance(hours=24 * 7 - 1)
    with transaction(gate.ctx.sessions) as session:
        recent = login_sessions.start(session, user_id, address=None, now=gate.clock.now)
        login_sessions.end(session, recent, gate.clock.now)
        assert login_sessions.prune(session, policy, gate.clock.now) == 0
    gate.clock.advance(hours=3)  # over a week after the old ones ended or went idle
    assert log_in(gate.client()) == 302
    left = rows(gate)
    assert [as_utc(r.created_at) for r in left] == [
        gate.clock.now - timedelta(hours=3),
        gate.clock.now,
    ]
