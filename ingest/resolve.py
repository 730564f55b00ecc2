"""Turn a Reddit post into the image files it shows, or say in words why it shows none."""

from __future__ import annotations

import html
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ingest.reddit import Post
from scenery.config import Settings
from scenery.http_client import (
    RETRYABLE_STATUS,
    ClientOwner,
    backoff_delay,
    make_client,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})
VIDEO_EXTENSIONS = frozenset({"gifv", "mp4", "webm", "mov", "mkv", "avi", "m4v"})
VIDEO_HOSTS = (
    "v.redd.it", "youtube.com", "youtu.be", "vimeo.com", "gfycat.com", "redgifs.com",
    "streamable.com", "twitch.tv", "tiktok.com", "dailymotion.com",
)  # fmt: skip
IMAGE_HOSTS = ("i.redd.it", "i.imgur.com", "staticflickr.com")
_REMOVED = {
    "deleted": "post was deleted by its author",
    "author": "post was deleted by its author",
    "moderator": "post was removed by the subreddit's moderators",
    "automod_filtered": "post was removed by AutoModerator",
    "reddit": "post was removed by Reddit",
    "anti_evil_ops": "post was removed by Reddit",
    "copyright_takedown": "post was removed after a copyright claim",
}
_IMGUR_ID = re.compile(r"[A-Za-z0-9]{5,10}")
_FLICKR_PHOTO = re.compile(r"/photos/[^/]+/(\d+)(?:/|$)")


@dataclass(frozen=True)
class ImageRef:
    """One image file of a post: where to download it and how to name it within the post."""

    url: str
    key: str
    index: int
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Resolution:
    """The images a post shows; when there are none, ``skipped`` says why, and whether a
    later try may succeed: ``retryable`` (an API failed, timed out or rate limited us after
    our retries) or ``needs`` (the name of a missing setting, such as an API key)."""

    images: tuple[ImageRef, ...]
    skipped: str | None = None
    retryable: bool = False
    needs: str | None = None


def _skip(reason: str, *, retryable: bool = False, needs: str | None = None) -> Resolution:
    return Resolution(images=(), skipped=reason, retryable=retryable, needs=needs)


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _on(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _extension(url: str) -> str:
    path = urlsplit(url).path.lower()
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1] if "." in name else ""


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Resolver(ClientOwner):
    """Resolve posts to direct image URLs: Reddit images and galleries, imgur, flickr."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._client = client or make_client(settings)
        self._owns_client = client is None
        self._sleep = sleep
        self._rng = rng

    def resolve(self, post: Post) -> Resolution:
        """Return the post's images in order, or an empty resolution with the reason."""
        parents = post.data.get("crosspost_parent_list") or []
        parent = parents[-1] if parents and isinstance(parents[-1], Mapping) else None
        source: Mapping[str, Any] = parent or post.data
        reason = self._skip_reason(post.data, parent)
        if reason:
            return _skip(reason)
        if source.get("is_gallery") or source.get("gallery_data"):
            return self._gallery(source)
        url = html.unescape(source.get("url_overridden_by_dest") or source.get("url") or "")
        return self._link(url, source)

    # -- skip rules --------------------------------------------------------------------------

    def _skip_reason(self, own: Mapping[str, Any], parent: Mapping[str, Any] | None) -> str | None:
        both = [own] if parent is None else [own, parent]
        for data in both:
            category = data.get("removed_by_category")
            if category:
                return _REMOVED.get(category, f"post was removed ({category})")
        if self._settings.skip_nsfw and any(d.get("over_18") for d in both):
            return "post is marked NSFW"
        if self._settings.skip_spoilers and any(d.get("spoiler") for d in both):
            return "post is marked as a spoiler"
        source = both[-1]
        if any(d.get("is_self") for d in both):
            return "self post (text, no image)"
        url = source.get("url_overridden_by_dest") or source.get("url") or ""
        media = source.get("secure_media") or source.get("media") or {}
        if (
            source.get("is_video")
            or source.get("post_hint") in ("hosted:video", "rich:video")
            or (isinstance(media, Mapping) and "reddit_video" in media)
            or _on(_host(url), VIDEO_HOSTS)
            or _extension(url) in VIDEO_EXTENSIONS
        ):
            return f"video, not a photo ({_host(url) or source.get('domain') or 'reddit'})"
        return None

    # -- Reddit galleries -------------------------------------------------------------------

    def _gallery(self, source: Mapping[str, Any]) -> Resolution:
        items = (source.get("gallery_data") or {}).get("items") or []
        metadata = source.get("media_metadata") or {}
        images = []
        for position, item in enumerate(items):
            media_id = str(item.get("media_id") or "") if isinstance(item, Mapping) else ""
            meta = metadata.get(media_id) if media_id else None
            if not isinstance(meta, Mapping) or meta.get("status") != "valid":
                continue
            biggest = meta.get("s") or {}
            if meta.get("e") != "Image" or not biggest.get("u"):
                continue  # animated items and failed uploads are not photos
            url = _original_gallery_url(html.unescape(biggest["u"]), media_id, meta.get("m"))
            images.append(
                ImageRef(url, media_id, position, _int(biggest.get("x")), _int(biggest.get("y")))
            )
        if not images:
            return _skip("gallery has no usable image")
        return Resolution(images=tuple(images))

    # -- links ------------------------------------------------------------------------------

    def _link(self, url: str, source: Mapping[str, Any]) -> Resolution:
        host = _host(url)
        path = urlsplit(url).path
        if host in ("imgur.com", "m.imgur.com", "i.imgur.com"):
            resolved = self._imgur(url, host, path)
            if resolved is not None:
                return resolved
        if _on(host, IMAGE_HOSTS) or (
            url.startswith(("http://", "https://")) and _extension(url) in IMAGE_EXTENSIONS
        ):
            width, height = _preview_size(source)
            return Resolution(images=(ImageRef(url, "0", 0, width, height),))
        if host in ("flickr.com", "m.flickr.com") and (match := _FLICKR_PHOTO.match(path)):
            return self._flickr(match.group(1))
        preview = _preview(source)
        if preview is not None:
            return Resolution(images=(preview,))
        return _skip(f"link is not an image ({host or source.get('domain') or 'no link'})")

    def _imgur(self, url: str, host: str, path: str) -> Resolution | None:
        """Resolve imgur pages and albums; None when ``url`` is a direct file or unknown shape."""
        parts = [p for p in path.split("/") if p]
        base = self._settings.imgur_image_base_url.rstrip("/")
        if host != "i.imgur.com" and len(parts) == 2 and parts[0] in ("a", "gallery"):
            album_id = parts[1].rsplit("-", 1)[-1]  # new-style links end "title-words-<id>"
            return self._imgur_album(album_id)
        if len(parts) == 1:
            image_id, _, ext = parts[0].partition(".")
            if _IMGUR_ID.fullmatch(image_id) and (host != "i.imgur.com" or not ext):
                # imgur serves the file under any image extension; .jpg is always accepted.
                return Resolution(images=(ImageRef(f"{base}/{image_id}.jpg", image_id, 0),))
        return None

    def _imgur_album(self, album_id: str) -> Resolution:
        client_id = self._settings.imgur_client_id
        if not client_id:
            return _skip("imgur album needs SCENERY_IMGUR_CLIENT_ID", needs="imgur_client_id")
        url = f"{self._settings.imgur_api_base_url.rstrip('/')}/3/album/{album_id}/images"
        headers = {"Authorization": f"Client-ID {client_id}"}
        body, problem, transient = self._get_json(url, {}, headers)
        if problem:
            return _skip(f"imgur album {album_id}: {problem}", retryable=transient)
        entries = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(entries, list):
            return _skip(f"imgur album {album_id}: unexpected answer from the imgur API")
        images = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or not entry.get("link"):
                continue
            if not str(entry.get("type", "")).startswith("image/") or entry.get("animated"):
                continue
            images.append(
                ImageRef(
                    entry["link"],
                    str(entry.get("id") or position),
                    position,
                    _int(entry.get("width")),
                    _int(entry.get("height")),
                )
            )
        if not images:
            return _skip(f"imgur album {album_id} has no usable image")
        return Resolution(images=tuple(images))

    # -- flickr ----------------------------------------------------------------------------

    def _flickr(self, photo_id: str) -> Resolution:
        api_key = self._settings.flickr_api_key
        if not api_key:
            return _skip("flickr page needs SCENERY_FLICKR_API_KEY", needs="flickr_api_key")
        url = f"{self._settings.flickr_api_base_url.rstrip('/')}/services/rest/"
        params = {
            "method": "flickr.photos.getSizes",
            "api_key": api_key,
            "photo_id": photo_id,
            "format": "json",
            "nojsoncallback": "1",
        }
        body, problem, transient = self._get_json(url, params, {})
        if problem:
            return _skip(f"flickr photo {photo_id}: {problem}", retryable=transient)
        if not isinstance(body, Mapping) or body.get("stat") != "ok":
            message = body.get("message") if isinstance(body, Mapping) else None
            return _skip(f"flickr photo {photo_id}: {message or 'unexpected answer'}")
        sizes = (body.get("sizes") or {}).get("size") or []
        best = _largest_flickr_size(sizes)
        if best is None:
            return _skip(f"flickr photo {photo_id} has no downloadable size")
        source, width, height = best
        return Resolution(images=(ImageRef(source, photo_id, 0, width, height),))

    # -- HTTP --------------------------------------------------------------------------------

    def _get_json(
        self, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[Any, str | None, bool]:
        """GET a JSON API with retries on 5xx, 429 and timeouts; return (body, problem,
        whether the problem may pass: true when the retries ran out)."""
        tries = self._settings.reddit_max_tries
        for attempt in range(1, tries + 1):
            wait: float | None = None
            try:
                response = self._client.get(url, params=params, headers=headers)
            except httpx.TimeoutException:
                problem = "the API timed out"
            except httpx.TransportError as exc:
                problem = f"could not reach the API ({type(exc).__name__})"
            else:
                status = response.status_code
                if status == 429:
                    problem = "the API is rate limiting us (HTTP 429)"
                    wait = retry_after_seconds(response, self._settings.rate_limit_default_wait)
                elif status in RETRYABLE_STATUS:
                    problem = f"the API failed (HTTP {status})"
                elif status != 200:
                    return None, f"the API answered HTTP {status}", False
                else:
                    try:
                        return response.json(), None, False
                    except ValueError:
                        return None, "the API sent a body that is not JSON", True
            if attempt < tries:
                delay = (
                    wait if wait is not None else backoff_delay(attempt, self._settings, self._rng)
                )
                log.warning("%s: %s; retrying in %.1f s", url, problem, delay)
                self._sleep(delay)
        return None, f"{problem} (gave up after {tries} tries)", True


def _original_gallery_url(url: str, media_id: str, mime: Any) -> str:
    """Swap a ``preview.redd.it`` URL for the original file on ``i.redd.it``."""
    if _host(url) != "preview.redd.it":
        return url
    ext = str(mime).rsplit("/", 1)[-1].lower() if mime else _extension(url)
    ext = {"jpeg": "jpg"}.get(ext, ext) or "jpg"
    return f"https://i.redd.it/{media_id}.{ext}"


def _preview_source(source: Mapping[str, Any]) -> Mapping[str, Any] | None:
    images = (source.get("preview") or {}).get("images") or []
    first = images[0] if images and isinstance(images[0], Mapping) else {}
    found = first.get("source")
    return found if isinstance(found, Mapping) and found.get("url") else None


def _preview_size(source: Mapping[str, Any]) -> tuple[int | None, int | None]:
    found = _preview_source(source)
    return (_int(found.get("width")), _int(found.get("height"))) if found else (None, None)


def _preview(source: Mapping[str, Any]) -> ImageRef | None:
    found = _preview_source(source)
    if found is None:
        return None
    url = html.unescape(str(found["url"]))
    return ImageRef(url, "0", 0, _int(found.get("width")), _int(found.get("height")))


def _largest_flickr_size(sizes: Any) -> tuple[str, int | None, int | None] | None:
    """The biggest photo size by area, "Original" winning ties."""
    best: tuple[int, int, str, int | None, int | None] | None = None
    for size in sizes if isinstance(sizes, list) else []:
        if not isinstance(size, Mapping) or not size.get("source"):
            continue
        if size.get("media", "photo") != "photo":
            continue
        width, height = _int(size.get("width")), _int(size.get("height"))
        rank = ((width or 0) * (height or 0), int(size.get("label") == "Original"))
        if best is None or rank > best[:2]:
            best = (*rank, str(size["source"]), width, height)
    return None if best is None else best[2:]
