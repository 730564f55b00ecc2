"""Admin accounts through Flask's test client: every /admin route needs a login, CSRF on
every POST, throttled failed logins, Argon2id hashes, ``scenery admin create``."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from scenery.models import AdminUser, ImageStatus
from tests.admin_world import (
    ADMIN,
    PASSWORD,
    AdminWorld,
    log_in,
    page_token,
    queued_ids,
)
from tests.live import BIN, scenery, scenery_env


def test_every_admin_route_redirects_to_login_when_logged_out(world: AdminWorld) -> None:
    client = world.app.test_client()
    token = page_token(client, "/admin/login")
    rules = [
        r
        for r in world.app.url_map.iter_rules()
        if r.rule.startswith("/admin") and not r.endpoint.startswith("auth.")
    ]
    assert len(rules) >= 15
    for rule in rules:
        url = rule.rule.replace("<int:image_id>", "1").replace("<int:candidate_id>", "1")
        url = url.replace("<int:subscription_id>", "1")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(url, method=method, data={"csrf_token": token})
            assert response.status_code == 302, (method, url, response.status_code)
            assert response.headers["Location"].startswith("/admin/login"), (method, url)
    # the public gallery stays public
    assert client.get("/").status_code == 200


def test_a_post_without_a_valid_csrf_token_is_refused(
    world: AdminWorld, admin: FlaskClient
) -> None:
    image_id = queued_ids(world)[0]
    for form in (
        {"act": f"approve:{image_id}"},
        {"act": f"approve:{image_id}", "csrf_token": "forged"},
    ):
        response = admin.post("/admin/decide", data=form)
        assert response.status_code == 400
        assert "CSRF" in response.get_data(as_text=True)
    assert world.status(image_id) == ImageStatus.QUEUED
    # the same request with the page's token goes through
    token = page_token(admin, "/admin/queue")
    response = admin.post("/admin/decide", data={"act": f"approve:{image_id}", "csrf_token": token})
    assert response.status_code == 302 and world.status(image_id) == ImageStatus.PUBLISHED


class Clock:
    """A clock that moves only when the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_five_wrong_passwords_in_a_row_are_throttled(world: AdminWorld) -> None:
    assert world.ctx.settings.login_lock_seconds == 300  # the default: a five-minute lock
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    world.app.config["CLOCK"] = clock
    client = world.app.test_client()
    codes = [log_in(client, ADMIN, "wrong password!") for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    # locked: even the right password is refused until the lock ends
    token = page_token(client, "/admin/login")
    right = {"username": ADMIN, "password": PASSWORD, "csrf_token": token}

    def refused(minutes: int) -> None:
        response = client.post("/admin/login", data=right)
        assert response.status_code == 429
        page = response.get_data(as_text=True)
        assert f"Too many failed logins. Try again in about {minutes} min." in page

    refused(5)
    clock.advance(299)
    refused(1)
    clock.advance(2)  # the lock ended a second ago
    assert log_in(client, ADMIN, PASSWORD) == 302
    assert client.get("/admin/").status_code == 200


def test_unknown_user_names_are_refused_like_wrong_passwords(world: AdminWorld) -> None:
    client = world.app.test_client()
    assert log_in(client, "nobody", PASSWORD) == 401
    assert client.get("/admin/queue").status_code == 302


def test_passwords_are_stored_as_argon2id_hashes(world: AdminWorld) -> None:
    with world.ctx.sessions() as session:
        stored = session.scalars(select(AdminUser.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_admin_create_command_reads_the_password_from_stdin(world: AdminWorld) -> None:
    result = subprocess.run(
        [str(BIN / "scenery"), "admin", "create", "Second", "--password-stdin"],
        input="another long password\n",
        env=scenery_env(world.ctx.settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "admin second can now log in" in result.stdout
    assert log_in(world.app.test_client(), "second", "another long password") == 302
    short = scenery(world.ctx.settings, "admin", "create", "third", "--password-stdin")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
