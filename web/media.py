"""Image files: originals and thumbnails by content address, cached for a year."""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_file

from scenery.errors import NotFound
from web.services import context

bp = Blueprint("media", __name__)

ONE_YEAR = 365 * 24 * 3600


def _send(path_fn, *args: object) -> Response:  # type: ignore[no-untyped-def]
    try:
        path = path_fn(*args)
    except NotFound:
        abort(404)
    if not path.is_file():
        abort(404)
    response = send_file(path, max_age=ONE_YEAR, conditional=True)
    # Content-addressed names never change, so browsers need never revalidate.
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response


@bp.get("/media/<string:sha256>.<string:ext>")
def original(sha256: str, ext: str) -> Response:
    return _send(context().storage.original_path, sha256, ext)


@bp.get("/thumbs/<int:size>/<string:sha256>.jpg")
def thumbnail(size: int, sha256: str) -> Response:
    ctx = context()
    return _send(ctx.storage.ensure_thumbnail, sha256, size, ctx.settings.max_image_pixels)
