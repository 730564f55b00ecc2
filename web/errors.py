"""One place that turns errors into pages that look like the site, or JSON under /api."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from scenery.accounts import AccountError
from scenery.errors import ImageRejected, ModelLoadError, NotFound, QueueUnavailable
from scenery.fetch import FetchFailed
from scenery.image_filters import FilterError
from scenery.review import ReviewError
from web.services import BadRequest

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def _respond(status: int, title: str, message: str) -> tuple[Any, int]:
    if _wants_json():
        return {"error": title, "message": message, "status": status}, status
    return render_template("error.html", status=status, title=title, message=message), status


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound) -> tuple[Any, int]:
        return _respond(404, "Not found", "There is no such image here.")

    @app.errorhandler(BadRequest)
    @app.errorhandler(FilterError)
    def _bad_request(exc: BadRequest | FilterError) -> tuple[Any, int]:
        return _respond(400, "Bad request", str(exc))

    @app.errorhandler(ReviewError)
    @app.errorhandler(AccountError)
    def _refused(exc: ReviewError | AccountError) -> tuple[Any, int]:
        return _respond(409, "Cannot do that", str(exc))

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[Any, int]:
        return _respond(400, "Form expired", f"{exc.description} Reload the page and try again.")

    @app.errorhandler(FetchFailed)
    def _fetch_failed(exc: FetchFailed) -> tuple[Any, int]:
        return _respond(400, "Cannot use that address", f"{exc} ({exc.code}).")

    @app.errorhandler(ImageRejected)
    def _rejected(exc: ImageRejected) -> tuple[Any, int]:
        return _respond(400, "Unusable image", f"That file cannot be used: {exc.reason}.")

    @app.errorhandler(ModelLoadError)
    def _model(exc: ModelLoadError) -> tuple[Any, int]:
        log.error("search model unavailable: %s", exc)
        return _respond(503, "Search unavailable", str(exc))

    @app.errorhandler(QueueUnavailable)
    def _queue(exc: QueueUnavailable) -> tuple[Any, int]:
        log.error("%s", exc)
        message = f"{exc}. Try again when it is back."
        return _respond(503, "Task queue unavailable", message)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Any, int]:
        messages = {
            404: "There is nothing at this address.",
            413: "That upload is larger than this gallery accepts.",
        }
        status = exc.code or 500
        return _respond(status, exc.name, messages.get(status, exc.description or exc.name))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Any, int]:
        log.exception("unhandled error on %s", request.path)
        return _respond(500, "Something went wrong", "The error has been logged.")
