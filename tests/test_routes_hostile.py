"""Every rule in the URL map, walked with hostile values in its path, query and body, logged out
and logged in: a client's mistake is a 4xx, so nothing may answer 5xx."""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

from scenery.config import Settings
from scenery.context import Context
from scenery.library import MAX_ID
from scenery.models import Candidate, Image, ImageStatus
from tests.admin_world import AdminWorld, log_in, page_token, queued_ids
from tests.helpers import subscribe

# One value of each kind that breaks something somewhere: the first id PostgreSQL's INTEGER
# cannot hold, the first SQLite cannot, negative, not an integer, unicode (a right-to-left
# override, an astral character and a byte that is not UTF-8), NUL, and long.
HOSTILE = [
    str(MAX_ID + 1),
    str(2**63),
    "-1",
    "1e9",
    "\u202egpj.exe \U0001f304 \udcff",
    "a\x00b",
    "x" * 4000,
]
FEW = [str(2**63), "a\x00b"]  # where the view behind is already walked with all of them
QUERY_KEYS = (
    "page", "per_page", "k", "q", "ef", "ids", "status", "reason", "from", "to", "all", "next",
)  # fmt: skip
FORM_KEYS = (
    "ids", "act", "action", "keep", "title", "back", "username", "password", "new-subreddit",
    "new-listing", "new-time_filter", "new-post_limit", "new-interval_minutes",
)  # fmt: skip
FORM = "application/x-www-form-urlencoded"
PLACEHOLDER = re.compile(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>")


def raw(value: str) -> bytes:
    """The value as sent: a lone surrogate escape becomes a byte that is not UTF-8."""
    return value.encode("utf-8", "surrogateescape")


def fill(rule: Rule, values: dict[str, str]) -> str:
    """The rule's path with each placeholder replaced by its value, URL-quoted."""
    return PLACEHOLDER.sub(lambda m: quote(raw(values[m.group(1)]), safe=""), rule.rule)


@dataclass
class Walk:
    """A client walking routes; what it sent, what came back, and every 5xx."""

    client: FlaskClient
    token: str
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def send(self, method: str, url: str, **kwargs: Any) -> None:
        if method != "GET":  # a valid token, so that POSTs reach their views
            kwargs["headers"] = {**kwargs.get("headers", {}), "X-CSRFToken": self.token}
        self.sent += 1
        try:
            status = self.client.open(url, method=method, **kwargs).status_code
        except Exception as exc:  # the error handler failed too: a server would answer 500
            status, kwargs["raised"] = 500, repr(exc)
        self.statuses[status] += 1
        if status >= 500:
            shown = {k: str(v)[:70] for k, v in kwargs.items() if k != "headers"}
            self.failures.append(f"{method} {url[:90]!r} {shown} -> {status}")

    def rules(self, rules: list[Rule], good: dict[str, str], values: list[str]) -> None:
        for rule in rules:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                for url, kwargs in requests(rule, method, good, values):
                    self.send(method, url, **kwargs)


def requests(
    rule: Rule, method: str, good: dict[str, str], values: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each hostile value in every path placeholder; then the real path with each hostile value
    in every query parameter and form field; for a POST also a JSON body and an upload."""
    names = PLACEHOLDER.findall(rule.rule)
    for value in values if names else []:
        yield fill(rule, dict.fromkeys(names, value)), {}
    url = fill(rule, good)
    for value in values:
        query = urlencode(dict.fromkeys(QUERY_KEYS, raw(value)))
        if method == "GET":
            yield url, {"query_string": query}
        else:
            body = urlencode(dict.fromkeys(FORM_KEYS, raw(value)))
            yield url, {"query_string": query, "data": body, "content_type": FORM}
    if method == "POST":
        yield url, {"json": {"ids": [2**63, -1], "title": "a\x00b", "act": "\udcff", "x": {}}}
        fields = dict.fromkeys(FORM_KEYS, values[-1])
        yield url, {"data": {**fields, "image": (io.BytesIO(b"\x00" * 64), "\u202e.jpg")}}


def real_values(world: AdminWorld) -> dict[str, str]:
    """A real value for every placeholder the app's rules have."""
    with world.ctx.sessions() as session:
        image = session.scalars(
            select(Image).where(Image.status == ImageStatus.PUBLISHED).limit(1)
        ).one()
        return {
            "image_id": str(image.id),
            "candidate_id": str(session.scalars(select(Candidate.id).limit(1)).one()),
            "subscription_id": str(subscribe(world.ctx, paused=True)),
            "sha256": image.sha256,
            "ext": image.extension,
            "size": "400",
            "filename": "style.css",
        }


def test_no_route_answers_5xx_to_hostile_paths_queries_or_bodies(world: AdminWorld) -> None:
    good = real_values(world)
    rules = [r for r in world.app.url_map.iter_rules() if r.endpoint != "auth.logout"]
    admin_rules = [r for r in rules if r.endpoint.startswith("admin.")]
    public = [r for r in rules if r not in admin_rules]  # the gallery, the API, the login
    # Charts read no parameters and take half a second each to draw: fewer values for them.
    charts = [r for r in admin_rules if r.endpoint.startswith("admin.chart_")]
    admin_rules = [r for r in admin_rules if r not in charts]
    assert len(admin_rules) >= 15 and len(public) >= 14

    client = world.app.test_client()
    anonymous = Walk(client, page_token(client, "/admin/login"))
    anonymous.rules(public, good, HOSTILE)
    anonymous.rules(admin_rules + charts, good, FEW)  # each ends at the login check

    client = world.app.test_client()
    assert log_in(client) == 302
    admin = Walk(client, page_token(client, "/admin/"))
    admin.rules(admin_rules, good, HOSTILE)
    admin.rules(charts, good, FEW)
    admin.rules(public, good, FEW)  # unpublished files are served to admins only

    failures = anonymous.failures + admin.failures
    assert not failures, f"{len(failures)} answered 5xx:\n" + "\n".join(failures)
    # The walk reached the views: logins were judged, admin actions done, pages shown.
    assert anonymous.statuses[401] or anonymous.statuses[429], anonymous.statuses
    assert admin.statuses[302] and admin.statuses[200], admin.statuses
    assert client.get("/admin/").status_code == 200  # still logged in at the end
    # JSON bodies are refused as such; a GET that merely says JSON is served.
    csrf = {"X-CSRFToken": admin.token}
    assert (
        admin.statuses[415]
        and client.post("/admin/decide", json={}, headers=csrf).status_code == 415
    )
    assert client.get("/api/images", content_type="application/json").status_code == 200
    assert anonymous.sent + admin.sent < 600, (anonymous.sent, admin.sent)
    assert queued_ids(world)  # no hostile id decided anything


@pytest.mark.parametrize("command", ["pause", "resume", "remove"])
def test_cli_subscription_commands_refuse_ids_past_the_row_range(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """The command line takes ids too: one past what a row id can be is "no such
    subscription", not a database error (PostgreSQL ids are 32-bit)."""
    from click.testing import CliRunner

    from scenery.cli import main

    Context(settings).migrate()
    monkeypatch.setenv("SCENERY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SCENERY_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("SCENERY_CLIP_MODEL", "tiny-test")
    result = CliRunner().invoke(main, ["subscriptions", command, str(2**31)])
    assert result.exit_code != 0 and "no subscription" in result.output, result.output
