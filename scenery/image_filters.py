"""Filters a visitor narrows the gallery with: orientation, size, screen fit, source and dates.

One parsed ``ImageFilter`` serves every place that lists or searches images: ``conditions``
turns it into SQL over ``images``, ``params`` back into the query parameters the API and the
pages share (so a filtered view can be bookmarked). A value that is unknown or malformed is a
``FilterError`` whose message says what is allowed.

``tag`` (repeatable) keeps photos with every tag named (``scenery.tags``). ``color`` keeps
photos whose leading colour is that one of ``scenery.colours.NAMES``.

Orientation: a panorama is at least twice as wide as it is high; a square photo has sides within
5% of each other; otherwise it is a landscape (wider) or a portrait (taller) photo. A size
preset (``hd``, ``4k``, ``5k``, ``8k``) keeps photos at least that large either way round, so a
portrait 2160x3840 counts as 4K. ``fits=WxH`` keeps photos that cover a screen of W x H device
pixels without being enlarged, cropping at most ``fit_tolerance`` of one side to fill it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, cast, func, or_, select

from scenery.colours import NAMES
from scenery.errors import SceneryError
from scenery.models import Image, ImageTag

ORIENTATIONS = ("landscape", "portrait", "square", "panorama")
SIZES = {"hd": (1920, 1080), "4k": (3840, 2160), "5k": (5120, 2880), "8k": (7680, 4320)}
SQUARE_SHARE = 20  # sides within 1/20 (5%) of the longer one
PANORAMA_RATIO = 2  # width at least this many times the height
LOCAL = "local"  # the "subreddit" of images imported from files
MAX_SIDE = 1_000_000  # larger width, height or screen sizes name nothing real
SUBREDDIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{1,20}")
SCREEN = re.compile(r"([0-9]{1,7})x([0-9]{1,7})")


class FilterError(SceneryError):
    """A filter parameter that cannot be used; the message names it and what is allowed."""


@dataclass(frozen=True)
class ImageFilter:
    """What a listing or search keeps; every field None keeps everything."""

    orientation: str | None = None
    size: str | None = None  # a SIZES preset
    min_width: int | None = None
    min_height: int | None = None
    min_megapixels: float | None = None
    fits: tuple[int, int] | None = None  # a screen's width and height in device pixels
    color: str | None = None  # the leading named colour (``scenery.colours``)
    subreddit: str | None = None  # as stored (any case given), or LOCAL
    added_after: date | None = None  # published on or after this day (UTC)
    added_before: date | None = None  # published on or before this day
    posted_after: date | None = None  # the Reddit post's day, likewise
    posted_before: date | None = None
    tag: tuple[str, ...] | None = None  # auto tags (scenery.tags), every one of them

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def params(self) -> dict[str, str | list[str]]:
        """The query parameters that give this filter back through ``parse_filter`` (``tag``
        as a list: it repeats)."""
        out: dict[str, str | list[str]] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "tag":
                out[f.name] = list(value)
            elif f.name == "fits":
                out[f.name] = f"{value[0]}x{value[1]}"
            elif isinstance(value, date):
                out[f.name] = value.isoformat()
            else:
                out[f.name] = f"{value:g}" if isinstance(value, float) else str(value)
        return out

    def conditions(self, fit_tolerance: float) -> list[ColumnElement[bool]]:
        """SQL conditions on ``images`` that keep what this filter keeps."""
        w, h = Image.width, Image.height
        out: list[ColumnElement[bool]] = []
        if self.orientation is not None:
            out.append(_orientation(self.orientation))
        if self.size is not None:
            long, short = SIZES[self.size]
            out.append(or_(and_(w >= long, h >= short), and_(h >= long, w >= short)))
        if self.min_width is not None:
            out.append(w >= self.min_width)
        if self.min_height is not None:
            out.append(h >= self.min_height)
        if self.min_megapixels is not None:
            out.append(cast(w, BigInteger) * h >= round(self.min_megapixels * 1e6))
        if self.fits is not None:
            out.append(_fits(*self.fits, fit_tolerance))
        if self.color is not None:
            out.append(Image.colour == self.color)
        if self.subreddit is not None:
            if self.subreddit == LOCAL:
                out.append(Image.source == "local")
            else:
                out.append(func.lower(Image.reddit_subreddit) == self.subreddit.lower())
        for name in self.tag or ():
            tagged = select(ImageTag.image_id).where(ImageTag.tag == name)
            out.append(Image.id.in_(tagged))
        out += _day_range(Image.published_at, self.added_after, self.added_before)
        out += _day_range(Image.reddit_created_at, self.posted_after, self.posted_before)
        return out


def orientation_of(width: int, height: int) -> str:
    """The orientation name of a photo of this size (what the SQL of ``orientation`` keeps)."""
    if SQUARE_SHARE * abs(width - height) <= max(width, height):
        return "square"
    if width >= PANORAMA_RATIO * height:
        return "panorama"
    return "landscape" if width > height else "portrait"


def _orientation(name: str) -> ColumnElement[bool]:
    w, h = Image.width, Image.height
    square = and_(SQUARE_SHARE * (w - h) <= w, SQUARE_SHARE * (h - w) <= h)
    panorama = w >= PANORAMA_RATIO * h
    if name == "square":
        return square
    if name == "panorama":
        return panorama
    if name == "landscape":
        return and_(w > h, ~square, ~panorama)
    return and_(h > w, ~square)


def _fits(width: int, height: int, tolerance: float) -> ColumnElement[bool]:
    """Covers a width x height screen unenlarged, losing at most ``tolerance`` of one side:
    the photo's aspect ratio within (1 - tolerance) of the screen's, either way."""
    w, h = cast(Image.width, BigInteger), cast(Image.height, BigInteger)
    keep = 1.0 - tolerance
    return and_(
        Image.width >= width,
        Image.height >= height,
        w * height >= keep * width * h,
        h * width >= keep * height * w,
    )


def _day_range(column: Any, first: date | None, last: date | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if first is not None:
        out.append(column >= datetime.combine(first, time(), UTC))
    if last is not None:
        out.append(column < datetime.combine(last + timedelta(days=1), time(), UTC))
    return out


def parse_filter(args: Mapping[str, str], tags: Sequence[str] = ()) -> ImageFilter:
    """An ``ImageFilter`` from query parameters (the names of its fields; ``tag`` may repeat,
    and must be one of ``tags``, the vocabulary); empty values are ignored, as a form leaves
    them."""
    values: dict[str, object] = {}
    for f in fields(ImageFilter):
        if f.name == "tag":
            wanted = _tags(args, tags)
            if wanted:
                values["tag"] = wanted
            continue
        raw = (args.get(f.name) or "").strip()
        if raw:
            values[f.name] = PARSERS[f.name](f.name, raw)
    parsed = ImageFilter(**values)  # type: ignore[arg-type]
    for low, high in (("added_after", "added_before"), ("posted_after", "posted_before")):
        first, last = getattr(parsed, low), getattr(parsed, high)
        if first is not None and last is not None and first > last:
            raise FilterError(f"{low} ({first}) is after {high} ({last})")
    return parsed


def _tags(args: Mapping[str, str], vocabulary: Sequence[str]) -> tuple[str, ...]:
    getlist = getattr(args, "getlist", None)
    given = getlist("tag") if getlist is not None else [args.get("tag") or ""]
    wanted: list[str] = []
    for raw in given:
        name = " ".join(raw.split()).lower()
        if not name or name in wanted:
            continue
        if name not in vocabulary:
            listed = ", ".join(vocabulary) or "none"
            raise FilterError(f"unknown tag {raw!r}: the tags are {listed}")
        wanted.append(name)
    return tuple(wanted)


def _choice(allowed: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.lower()
        if value not in allowed:
            raise FilterError(f"unknown {name} {raw!r}: use one of {', '.join(allowed)}")
        return value

    return parse


def _side(name: str, raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SIDE:
        raise FilterError(f"{name} must be a whole number of pixels from 1 to {MAX_SIDE:,}")
    return int(raw)


def _megapixels(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 10_000:  # also refuses nan and inf
        raise FilterError(f"{name} must be a number of megapixels above 0 (e.g. 8.3)")
    return value


def _screen(name: str, raw: str) -> tuple[int, int]:
    found = SCREEN.fullmatch(raw.lower())
    if found is None or not all(1 <= int(n) <= MAX_SIDE for n in found.groups()):
        raise FilterError(f"{name} must be WIDTHxHEIGHT in pixels, e.g. 2560x1440")
    return int(found.group(1)), int(found.group(2))


def _subreddit(name: str, raw: str) -> str:
    value = raw.removeprefix("r/")
    if value.lower() == LOCAL:
        return LOCAL
    if SUBREDDIT.fullmatch(value) is None:
        raise FilterError(f"{name} must be a subreddit's name (e.g. EarthPorn) or {LOCAL!r}")
    return value


def _day(name: str, raw: str) -> date:
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
        return datetime.fromisoformat(raw).astimezone(UTC).date()
    except ValueError:
        raise FilterError(f"{name} must be an ISO date, e.g. 2026-12-01") from None


PARSERS: dict[str, Callable[[str, str], object]] = {
    "orientation": _choice(ORIENTATIONS),
    "size": _choice(tuple(SIZES)),
    "min_width": _side,
    "min_height": _side,
    "min_megapixels": _megapixels,
    "fits": _screen,
    "color": _choice(NAMES),
    "subreddit": _subreddit,
    "added_after": _day,
    "added_before": _day,
    "posted_after": _day,
    "posted_before": _day,
}
