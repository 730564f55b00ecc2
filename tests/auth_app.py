"""A bare gallery with one admin and a hand-moved clock: what the login, throttle and
session tests start from (no photos, no ingest)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from scenery.accounts import create_user
from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.embed import OpenClipEmbedder
from tests.helpers import csrf_token
from web import create_app

ADMIN, PASSWORD = "owner", "correct horse battery"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when the test moves it."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0) -> None:
        self.now += timedelta(seconds=seconds, minutes=minutes, hours=hours)


@dataclass
class AuthApp:
    app: Flask
    ctx: Context
    clock: Clock

    def client(self, address: str = "127.0.0.1", forwarded_for: str | None = None) -> FlaskClient:
        """A browser at ``address``; ``forwarded_for`` is what a proxy would add."""
        client = self.app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        if forwarded_for is not None:
            client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
        return client


@contextmanager
def auth_app(
    settings: Settings, embedder: OpenClipEmbedder, **overrides: object
) -> Iterator[AuthApp]:
    """The app on ``settings`` changed by ``overrides``, with the admin ``owner``."""
    clock = Clock()
    app = create_app(
        settings.model_copy(update=overrides), embedder=embedder, config={"CLOCK": clock}
    )
    ctx: Context = app.extensions["scenery"]
    with transaction(ctx.sessions) as session:
        create_user(session, ADMIN, PASSWORD)
    try:
        yield AuthApp(app, ctx, clock)
    finally:
        ctx.close()


def log_in(client: FlaskClient, username: str = ADMIN, password: str = PASSWORD) -> int:
    """Post the login form as a browser would; return the status (302: logged in)."""
    token = csrf_token(client, "/admin/login")
    response = client.post(
        "/admin/login", data={"username": username, "password": password, "csrf_token": token}
    )
    return response.status_code


def locked_minutes(client: FlaskClient, password: str = PASSWORD) -> int | None:
    """Try to log in as the admin; the minutes the refusal names, None when not locked."""
    token = csrf_token(client, "/admin/login")
    response = client.post(
        "/admin/login", data={"username": ADMIN, "password": password, "csrf_token": token}
    )
    if response.status_code != 429:
        return None
    page = response.get_data(as_text=True)
    marker = "Try again in about "
    assert marker in page
    return int(page.split(marker, 1)[1].split(" min", 1)[0])


def opens_admin(client: FlaskClient) -> bool:
    """Whether the client's cookie opens the dashboard (not sent to the login page)."""
    response = client.get("/admin/")
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/admin/login")
    return response.status_code == 200
