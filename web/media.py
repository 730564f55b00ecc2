"""Image files: originals and thumbnails by content address.

Published images' files are public and cached for a year. Files of queued, rejected or
deleted images are served only to a logged-in admin, and never cached by shared caches."""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_file
from flask_login import current_user
from sqlalchemy import select

from scenery.errors import NotFound
from scenery.models import Image, ImageStatus
from web.services import context, db

bp = Blueprint("media", __name__)

ONE_YEAR = 365 * 24 * 3600


def _published(sha256: str) -> bool:
    status = db().scalar(select(Image.status).where(Image.sha256 == sha256[:64]))
    return status == ImageStatus.PUBLISHED


def _send(sha256: str, path_fn, *args: object) -> Response:  # type: ignore[no-untyped-def]
    public = _published(sha256)
    if not public and not current_user.is_authenticated:
        abort(404)
    try:
        path = path_fn(*args)
    except NotFound:
        abort(404)
    if not path.is_file():
        abort(404)
    response = send_file(path, max_age=ONE_YEAR, conditional=True)
    if public:
        # Content-addressed names never change, so browsers need never revalidate.
        response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    else:
        response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/media/<string:sha256>.<string:ext>")
def original(sha256: str, ext: str) -> Response:
    return _send(sha256, context().storage.original_path, sha256, ext)


@bp.get("/thumbs/<int:size>/<string:sha256>.jpg")
def thumbnail(size: int, sha256: str) -> Response:
    ctx = context()
    return _send(sha256, ctx.storage.ensure_thumbnail, sha256, size, ctx.settings.max_image_pixels)
