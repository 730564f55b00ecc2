"""Admin sessions: Flask-Login over server-side sessions (``scenery.sessions``) that logout,
a password change, idleness and age end; login and logout pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.wrappers import Response

from scenery import sessions as login_sessions
from scenery.accounts import authenticate
from scenery.db import transaction
from scenery.models import utcnow
from scenery.sessions import SessionPolicy
from scenery.throttle import ThrottlePolicy
from web.forms import LoginForm
from web.services import context, db

bp = Blueprint("auth", __name__, url_prefix="/admin")
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to use the admin pages."
login_manager.session_protection = "strong"


@dataclass(frozen=True)
class Admin(UserMixin):  # type: ignore[misc]
    """The logged-in admin. The id Flask-Login keeps in the signed cookie is the token of a
    server-side session, so a copy of the cookie is worth nothing once that session ended."""

    user_id: int
    username: str
    token: str

    def get_id(self) -> str:
        return self.token


def _now() -> datetime:
    return current_app.config["CLOCK"]()  # type: ignore[no-any-return]


def _session_policy() -> SessionPolicy:
    return SessionPolicy.of(context().settings)


@login_manager.user_loader
def _load(token: str) -> Admin | None:
    """The admin whose open session ``token`` names (also for a remember-me cookie, whose
    id is the same token), recording the use at most once a minute."""
    policy, now = _session_policy(), _now()
    live = login_sessions.check(db(), token, policy, now)
    if live is None:
        return None
    if login_sessions.touch_due(live, policy, now):
        with transaction(context().sessions) as session:
            login_sessions.touch(session, live, policy, now)
    return Admin(live.user_id, live.username, token)


def init_auth(app: Flask) -> None:
    settings = app.extensions["scenery"].settings
    app.config.setdefault("CLOCK", utcnow)  # what the throttle and sessions read the time from
    app.config.update(
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        # The signed cookie's own limit; the server-side session is what really ends.
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_max_hours),
    )
    login_manager.init_app(app)
    app.register_blueprint(bp)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect off the gallery after login."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        settings = context().settings
        now = _now()  # tests move the clock by hand
        client = request.remote_addr or "unknown"  # the real client's behind trusted proxies
        result = authenticate(
            context().sessions,
            form.username.data or "",
            form.password.data or "",
            client,
            policy=ThrottlePolicy.of(settings),
            now=now,
        )
        if result.user is not None:
            with transaction(context().sessions) as session:
                login_sessions.prune(session, _session_policy(), now)
                token = login_sessions.start(session, result.user.id, address=client, now=now)
            login_user(Admin(result.user.id, result.user.username, token))
            return redirect(_safe_next(request.args.get("next")))
        if result.locked_until is not None:
            minutes = max(1, round((result.locked_until - now).total_seconds() / 60))
            flash(f"Too many failed logins. Try again in about {minutes} min.", "error")
            status = 429
        else:
            flash("Wrong user name or password.", "error")
            status = 401
    elif request.method == "POST":
        status = 400
    return render_template("admin/login.html", form=form), status


@bp.post("/logout")
def logout() -> Response:
    """End the session on the server too: a copy of the cookie no longer opens it."""
    if current_user.is_authenticated:  # a POST, so CSRFProtect has checked its token
        with transaction(context().sessions) as session:
            login_sessions.end(session, current_user.get_id(), _now())
    logout_user()
    return redirect(url_for("gallery.home"))
