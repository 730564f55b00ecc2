"""Request-scoped access to the process context: one database session per request."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable

from flask import current_app, g, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import UnsupportedMediaType

from scenery.context import Context
from scenery.errors import SceneryError
from scenery.imaging import Decoded, ImageLimits, decode
from scenery.library import published_sources


class BadRequest(SceneryError):
    """The request's parameters are invalid."""


def context() -> Context:
    return current_app.extensions["scenery"]  # type: ignore[no-any-return]


def db() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = context().sessions()
    return g.db_session  # type: ignore[no-any-return]


def refuse_unusable_input() -> None:
    """Refuse, before any view, input no view takes or no column can store.

    Forms here are form posts and uploads are multipart: a JSON body is refused (415) rather
    than left to Flask-WTF, which would read any JSON value as form data. Text with a NUL
    (PostgreSQL stores none) or a lone surrogate (not UTF-8) in the path, query or form is a
    400, whatever view or database it was headed for."""
    if request.is_json and request.method not in ("GET", "HEAD"):
        raise UnsupportedMediaType("send a form post or a multipart upload, not JSON")
    for text in _texts():
        if "\x00" in text:
            raise BadRequest("the request contains a NUL character")
        if not text.isascii() and not _is_utf8(text):
            raise BadRequest("the request contains text that is not valid UTF-8")


def _texts() -> Iterable[str]:
    yield request.path
    for params in (request.args, request.form):
        for key, values in params.lists():
            yield key
            yield from values


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or BadRequest."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def uploaded_image() -> Decoded:
    """The image sent as multipart field ``image``, size-checked and decoded."""
    settings = context().settings
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        raise BadRequest("send an image file as the multipart form field 'image'")
    data = upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise BadRequest(f"the image is larger than {settings.max_upload_bytes:,} bytes")
    return decode(data, ImageLimits.from_settings(settings))


def tag_vocabulary() -> tuple[str, ...]:
    """The auto tags there are (none when auto tags are off)."""
    tagger = context().tagger
    return tagger.names() if tagger is not None else ()


SORTS = ("newest", "relevance", "random")


def sort_arg(default: str, allowed: tuple[str, ...]) -> tuple[str, int]:
    """The ``sort`` asked for (one of ``allowed``) and the ``seed`` of a random order (a new
    one when none is given: the response carries it, so the next page keeps the order)."""
    sort = (request.values.get("sort") or default).strip().lower()
    if sort not in allowed:
        hint = " (relevance needs a search)" if sort == "relevance" else ""
        raise BadRequest(f"unknown sort {sort!r}{hint}: use one of {', '.join(allowed)}")
    seed = int_arg("seed", 0, 0, 2**31 - 1)
    if sort == "random" and not seed:
        seed = secrets.randbelow(2**31 - 1) + 1
    return sort, seed


SOURCES_TTL = 60.0  # seconds the filter bar's source counts are reused in a process


def source_counts() -> dict[str, int]:
    """Published images per source for the filter bar, counted at most once a minute per
    process (a GROUP BY over every published image: tens of ms at 100,000)."""
    held = current_app.extensions.setdefault("scenery-sources", {})
    now = time.monotonic()
    if "at" not in held or now - held["at"] > SOURCES_TTL:
        held["counts"], held["at"] = published_sources(db()), now
    counts: dict[str, int] = held["counts"]
    return counts
