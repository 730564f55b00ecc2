"""URLs: the integers routes accept, and an image's files and pages (templates, JSON API)."""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from werkzeug.routing import IntegerConverter, Map

from scenery.library import MAX_ID
from scenery.models import Image
from web.services import context


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: a non-negative integer no larger than a row id can be.

    Each integer in a URL here is a row id or a thumbnail size, so a larger number (or a
    negative one, which the pattern never matches) is a 404, like any other unknown id, before a
    view or the database sees it."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def public(path: str) -> str:
    """A URL for the JSON API, from a path ``url_for`` made: on ``SCENERY_PUBLIC_URL`` when it
    is set, else the path itself (a client resolves it against the URL it asked). Never on the
    request's Host header: any client can set that, and a cache would hand its URLs to all."""
    base = context().settings.public_url
    if not base:
        return path
    return base + path.removeprefix(request.script_root)  # the base names the mount point


def original_url(image: Image, external: bool = False) -> str:
    path = url_for("media.original", sha256=image.sha256, ext=image.extension)
    return public(path) if external else path


def thumb_url(image: Image, size: int = 400, external: bool = False) -> str:
    path = url_for("media.thumbnail", size=size, sha256=image.sha256)
    return public(path) if external else path


def page_url(image: Image, external: bool = False) -> str:
    path = url_for("gallery.image_page", image_id=image.id)
    return public(path) if external else path


def reddit_url(image: Image) -> str | None:
    """The Reddit post an image came from, if any."""
    if not image.reddit_permalink:
        return None
    return f"https://www.reddit.com{image.reddit_permalink}"
