"""URLs of an image's files and pages, shared by templates and the JSON API."""

from __future__ import annotations

from flask import url_for

from scenery.models import Image


def original_url(image: Image, external: bool = False) -> str:
    return url_for("media.original", sha256=image.sha256, ext=image.extension, _external=external)


def thumb_url(image: Image, size: int = 400, external: bool = False) -> str:
    return url_for("media.thumbnail", size=size, sha256=image.sha256, _external=external)


def page_url(image: Image, external: bool = False) -> str:
    return url_for("gallery.image_page", image_id=image.id, _external=external)


def reddit_url(image: Image) -> str | None:
    """The Reddit post an image came from, if any."""
    if not image.reddit_permalink:
        return None
    return f"https://www.reddit.com{image.reddit_permalink}"
