"""Admin sessions: Flask-Login with the accounts in the database, login and logout pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.wrappers import Response

from scenery.accounts import authenticate
from scenery.db import transaction
from scenery.models import AdminUser, utcnow
from web.forms import LoginForm
from web.services import context, db

bp = Blueprint("auth", __name__, url_prefix="/admin")
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to use the admin pages."
login_manager.session_protection = "strong"


@dataclass(frozen=True)
class Admin(UserMixin):  # type: ignore[misc]
    """The logged-in admin. The session id carries a fragment of the password hash, so setting
    a new password (``scenery admin create``) ends every other session of that account."""

    user_id: int
    username: str
    stamp: str

    def get_id(self) -> str:
        return f"{self.user_id}:{self.stamp}"

    @classmethod
    def of(cls, user: AdminUser) -> Admin:
        return cls(user.id, user.username, user.password_hash[-12:])


@login_manager.user_loader
def _load(session_id: str) -> Admin | None:
    user_id, _, stamp = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db().get(AdminUser, int(user_id))
    admin = Admin.of(user) if user is not None else None
    return admin if admin is not None and admin.stamp == stamp else None


def init_auth(app: Flask) -> None:
    secure = app.extensions["scenery"].settings.secure_cookies
    app.config.setdefault("CLOCK", utcnow)  # what the login throttle reads the time from
    app.config.update(
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
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
        now = current_app.config["CLOCK"]()  # the throttle's time; tests move it by hand
        with transaction(context().sessions) as session:
            result = authenticate(
                session,
                form.username.data or "",
                form.password.data or "",
                request.remote_addr or "unknown",
                max_failures=settings.login_max_failures,
                lock_seconds=settings.login_lock_seconds,
                now=now,
            )
            admin = Admin.of(result.user) if result.user else None
        if admin is not None:
            login_user(admin)
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
    logout_user()  # a POST, so CSRFProtect has checked its token
    return redirect(url_for("gallery.home"))
