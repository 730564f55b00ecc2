"""The Flask web gallery: ``create_app`` wires settings, database and index into blueprints."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from flask import Flask, g

from scenery.config import Settings, load_settings
from scenery.context import Context
from scenery.embed import Embedder

HERE = Path(__file__).parent
log = logging.getLogger(__name__)


def _asset_dir(name: str) -> Path:
    """templates/ and static/ live beside web/ in a checkout and inside web/ in the wheel."""
    packaged = HERE / name
    return packaged if packaged.is_dir() else HERE.parent / name


def create_app(
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    config: dict[str, Any] | None = None,
) -> Flask:
    """Build the gallery app; tests pass their own settings and, optionally, an embedder."""
    settings = settings or load_settings()
    context = Context(settings, embedder=embedder)
    context.migrate()

    app = Flask(
        __name__,
        template_folder=str(_asset_dir("templates")),
        static_folder=str(_asset_dir("static")),
    )
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client's address (what the login throttle counts) and scheme, as the trusted
        # proxies saw them; the Host header is not taken from them here.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    app.config.update(
        SECRET_KEY=settings.flask_secret(),
        # Room for the multipart envelope around the largest allowed upload.
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 64 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the session: a long review is not cut off
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.config.update(config or {})
    app.extensions["scenery"] = context

    from flask_wtf.csrf import CSRFProtect

    from scenery.colours import NAMES
    from scenery.tags import tag_names
    from web import admin, api, errors, gallery, media, urls
    from web.auth import init_auth
    from web.services import refuse_unusable_input

    # Before any rule is added: every <int:...> is bounded by the largest row id.
    app.url_map.converters["int"] = urls.RowIdConverter
    app.before_request(refuse_unusable_input)

    app.jinja_env.globals.update(
        page_url=urls.page_url,
        thumb_url=urls.thumb_url,
        original_url=urls.original_url,
        reddit_url=urls.reddit_url,
        colour_names=NAMES,
        tag_names=tag_names,
    )

    app.register_blueprint(gallery.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(media.bp)
    init_auth(app)
    app.register_blueprint(admin.bp)
    csrf = CSRFProtect(app)  # every POST, PUT, PATCH and DELETE needs the session's token
    csrf.exempt(api.bp)  # the JSON API is read-only (search by image is a POST with a file)
    errors.register(app)

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    @app.after_request
    def _security_headers(response: Any) -> Any:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    if settings.warm_up:
        threading.Thread(target=warm_up, args=(context,), name="warm-up", daemon=True).start()
    return app


def warm_up(context: Context) -> None:
    """Load the embedder and open the index; failures surface later, on the first search."""
    try:
        context.embedder.load()
        context.embedder.encode_text(["warm up"])
        context.index.refresh(force=True)
        if context.index.use_text_shift(context.text_queries.shift):
            context.index.save()  # so the next process loads the shift instead of computing it
    except Exception:  # the search views report the same error properly
        log.warning("warm-up failed; search will retry on first use", exc_info=True)
