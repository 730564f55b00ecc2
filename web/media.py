"""Image files: originals and thumbnails by content address.

Cache policy. A published image's files (original, page-size and grid thumbnails alike) are
public for ``SCENERY_MEDIA_CACHE_SECONDS`` (an hour by default) and must then be revalidated:
a name never changes its bytes, but unpublishing or deleting must take effect in shared caches
too, so no copy may outlive that bound. Revalidation is cheap (ETag and Last-Modified: a 304
with no body while the image is published, a 404 once it is not). Files of queued, rejected or
deleted images are served only to a logged-in admin, never stored by any cache; nor are 404s,
so a file published again is served at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Response, abort, send_file
from flask_login import current_user
from sqlalchemy import select

from scenery.errors import NotFound
from scenery.models import Image, ImageStatus
from scenery.storage import SHA256_RE
from web.services import context, db

bp = Blueprint("media", __name__)


def _published(sha256: str) -> bool:
    status = db().scalar(select(Image.status).where(Image.sha256 == sha256))
    return status == ImageStatus.PUBLISHED


def _send(sha256: str, path_of: Callable[[], Path]) -> Response:
    """The file ``path_of`` names, to whoever may see it, with the cache policy above."""
    if not SHA256_RE.fullmatch(sha256):
        abort(404)
    public = _published(sha256)
    if not public and not current_user.is_authenticated:
        abort(404)
    try:
        path = path_of()
    except NotFound:
        abort(404)
    if not path.is_file():
        abort(404)
    response = send_file(path, conditional=True)  # ETag and Last-Modified; 304 when they match
    response.headers.pop("Expires", None)  # Cache-Control alone says how long
    if public:
        seconds = context().settings.media_cache_seconds
        response.headers["Cache-Control"] = f"public, max-age={seconds}, must-revalidate"
    else:
        response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.after_request
def _no_stored_refusals(response: Response) -> Response:
    """A 404 is not kept either: an image published again must not stay missing."""
    if response.status_code == 404:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/media/<string:sha256>.<string:ext>")
def original(sha256: str, ext: str) -> Response:
    return _send(sha256, lambda: context().storage.original_path(sha256, ext))


@bp.get("/thumbs/<int:size>/<string:sha256>.jpg")
def thumbnail(size: int, sha256: str) -> Response:
    ctx = context()
    pixels = ctx.settings.max_image_pixels
    return _send(sha256, lambda: ctx.storage.ensure_thumbnail(sha256, size, pixels))
