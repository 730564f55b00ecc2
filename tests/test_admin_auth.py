"""Admin accounts through Flask's test client: every /admin route needs a login, CSRF on
every POST, failed logins throttled per user name and address (the owner is never locked out
from another address), Argon2id hashes, ``scenery admin create``."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from scenery.accounts import authenticate
from scenery.config import Settings
from scenery.embed import OpenClipEmbedder
from scenery.models import AdminSession, AdminUser, ImageStatus, LoginThrottle
from scenery.throttle import ThrottlePolicy, address_key
from tests.admin_world import AdminWorld, page_token, queued_ids
from tests.auth_app import ADMIN, PASSWORD, AuthApp, auth_app, locked_minutes, log_in, opens_admin
from tests.helpers import csrf_token
from tests.live import BIN, scenery, scenery_env


@pytest.fixture
def gate(settings: Settings, tiny_embedder: OpenClipEmbedder) -> Iterator[AuthApp]:
    with auth_app(settings, tiny_embedder) as built:
        yield built


def test_every_admin_route_redirects_to_login_when_logged_out(gate: AuthApp) -> None:
    client = gate.client()
    token = page_token(client, "/admin/login")
    rules = [
        r
        for r in gate.app.url_map.iter_rules()
        if r.rule.startswith("/admin") and not r.endpoint.startswith("auth.")
    ]
    assert len(rules) >= 15
    for rule in rules:
        url = rule.rule.replace("<int:image_id>", "1").replace("<int:candidate_id>", "1")
        url = url.replace("<int:subscription_id>", "1")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
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


def test_five_wrong_passwords_in_a_row_are_throttled(gate: AuthApp) -> None:
    assert gate.ctx.settings.login_lock_seconds == 300  # the default: a five-minute lock
    client = gate.client()
    codes = [log_in(client, ADMIN, "wrong password!") for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    # locked: even the right password is refused until the lock ends
    assert locked_minutes(client) == 5
    gate.clock.advance(299)
    assert locked_minutes(client) == 1
    gate.clock.advance(2)  # the lock ended a second ago
    assert log_in(client) == 302 and opens_admin(client)


def test_the_owner_logs_in_from_another_address_while_one_is_locked_out(gate: AuthApp) -> None:
    attacker, owner = gate.client("203.0.113.9"), gate.client("198.51.100.20")
    assert [log_in(attacker, ADMIN, "guess") for _ in range(5)][-1] == 429
    assert locked_minutes(attacker) == 5  # the right password too, from the attacker's address
    assert log_in(owner) == 302 and opens_admin(owner)


def test_each_further_failure_doubles_the_lock_up_to_an_hour(gate: AuthApp) -> None:
    assert gate.ctx.settings.login_lock_max_seconds == 3600  # the default cap
    client = gate.client("203.0.113.9")
    assert [log_in(client, ADMIN, "guess") for _ in range(5)][-1] == 429
    waits = [5]
    for _ in range(5):
        gate.clock.advance(minutes=waits[-1], seconds=1)
        waits.append(locked_minutes(client, "another guess") or 0)
    assert waits == [5, 10, 20, 40, 60, 60]
    gate.clock.advance(minutes=59)
    assert locked_minutes(client) == 1  # still locked, even for the right password
    gate.clock.advance(minutes=1, seconds=1)
    assert log_in(client) == 302  # and a success starts the count again
    assert [log_in(gate.client("203.0.113.9"), ADMIN, "x") for _ in range(4)] == [401] * 4


def test_one_address_trying_many_names_is_locked_for_every_name(
    settings: Settings, tiny_embedder: OpenClipEmbedder
) -> None:
    with auth_app(settings, tiny_embedder, login_address_max_failures=3) as gate:
        sprayer = gate.client("203.0.113.9")
        assert [log_in(sprayer, name, "guess") for name in ("ann", "bob", "cy")] == [401, 401, 429]
        assert locked_minutes(sprayer) == 5  # the owner's name too, from that address
        assert log_in(gate.client("198.51.100.20")) == 302


def test_one_name_tried_from_many_addresses_is_locked_for_everyone_at_the_ceiling(
    settings: Settings, tiny_embedder: OpenClipEmbedder
) -> None:
    with auth_app(settings, tiny_embedder, login_user_max_failures=4) as gate:
        codes = [log_in(gate.client(f"203.0.113.{n}"), ADMIN, "guess") for n in range(4)]
        assert codes == [401, 401, 401, 429]
        owner = gate.client("198.51.100.20")
        assert locked_minutes(owner) == 5
        gate.clock.advance(minutes=5, seconds=1)
        # the ceiling's lock does not grow: one more failure does not lock the name again
        assert log_in(gate.client("203.0.113.50"), ADMIN, "guess") == 401
        assert log_in(owner) == 302


def test_parallel_guesses_are_counted_before_any_is_checked(gate: AuthApp) -> None:
    clients = [gate.client("203.0.113.9") for _ in range(8)]
    tokens = [csrf_token(client, "/admin/login") for client in clients]
    start = threading.Barrier(len(clients))

    def guess(n: int) -> int:
        start.wait()
        form = {"username": ADMIN, "password": f"guess {n}", "csrf_token": tokens[n]}
        return clients[n].post("/admin/login", data=form).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        codes = sorted(pool.map(guess, range(len(clients))))
    # four are checked and fail; the fifth locks the pair; the rest are refused unchecked
    assert codes == [401] * 4 + [429] * 4


def throttled(gate: AuthApp) -> set[str]:
    with gate.ctx.sessions() as session:
        return set(session.scalars(select(LoginThrottle.key).where(LoginThrottle.failures > 0)))


def test_behind_one_trusted_proxy_the_forwarded_address_is_throttled(
    settings: Settings, tiny_embedder: OpenClipEmbedder
) -> None:
    with auth_app(settings, tiny_embedder, trusted_proxies=1) as gate:
        attacker = gate.client("127.0.0.1", forwarded_for="10.9.9.9, 203.0.113.9")
        assert [log_in(attacker, ADMIN, "guess") for _ in range(5)][-1] == 429
        assert f"pair:203.0.113.9|{ADMIN}" in throttled(gate)
        owner = gate.client("127.0.0.1", forwarded_for="198.51.100.20")
        assert log_in(owner) == 302 and opens_admin(owner)
        with gate.ctx.sessions() as session:
            assert session.scalars(select(AdminSession.address)).one() == "198.51.100.20"


def test_without_trusted_proxies_forwarded_headers_are_ignored(gate: AuthApp) -> None:
    assert gate.ctx.settings.trusted_proxies == 0  # the default
    attacker = gate.client("127.0.0.1", forwarded_for="203.0.113.9")
    assert [log_in(attacker, ADMIN, "guess") for _ in range(5)][-1] == 429
    assert throttled(gate) == {f"pair:127.0.0.1|{ADMIN}", "addr:127.0.0.1", f"user:{ADMIN}"}
    # a forged header does not make another client: the same address stays locked
    assert locked_minutes(gate.client("127.0.0.1", forwarded_for="198.51.100.20")) == 5


def test_an_ipv6_client_is_throttled_by_its_64_network() -> None:
    assert (
        address_key("2001:db8:1:2::1")
        == address_key("2001:db8:1:2:ffff::9")
        == ("2001:db8:1:2::/64")
    )
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("not|an\x00 address") == "notan address"


def test_unknown_user_names_are_refused_like_wrong_passwords(gate: AuthApp) -> None:
    client = gate.client()
    assert log_in(client, "nobody", PASSWORD) == 401
    assert client.get("/admin/queue").status_code == 302


def test_names_no_account_can_have_are_refused_and_counted_under_one_key(gate: AuthApp) -> None:
    client = gate.client()
    for name in ("Ünïcode ❄", "owner; --"):
        assert log_in(client, name, PASSWORD) == 401
    # a NUL (which PostgreSQL cannot store) reaching the core is refused, not a crash
    policy = ThrottlePolicy.of(gate.ctx.settings)
    result = authenticate(
        gate.ctx.sessions, "owner\x00", PASSWORD, "127.0.0.1", policy=policy, now=gate.clock.now
    )
    assert not result.ok
    with gate.ctx.sessions() as session:
        row = session.get(LoginThrottle, "pair:127.0.0.1|*")
        assert row is not None and row.failures == 3


def test_passwords_are_stored_as_argon2id_hashes(gate: AuthApp) -> None:
    with gate.ctx.sessions() as session:
        stored = session.scalars(select(AdminUser.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_admin_create_command_reads_the_password_from_stdin(gate: AuthApp) -> None:
    result = subprocess.run(
        [str(BIN / "scenery"), "admin", "create", "Second", "--password-stdin"],
        input="another long password\n",
        env=scenery_env(gate.ctx.settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "admin second can now log in" in result.stdout
    assert log_in(gate.client(), "second", "another long password") == 302
    short = scenery(gate.ctx.settings, "admin", "create", "third", "--password-stdin")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
