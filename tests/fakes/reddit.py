"""A fake Reddit (plus imgur API, flickr API and image files) served on 127.0.0.1 for tests.

Use it as (tests that share one server per module call ``fake.reset()`` between tests)::

    fake = FakeReddit()
    fake.add_posts("EarthPorn", [make_post(id="a1"), ...])
    fake.add_file("/img/bridge.jpg", photo.read_bytes())
    fake.fail("/r/EarthPorn/new.json", status=429, headers={"Retry-After": "7"})
    with fake.running() as base:
        settings = fake.settings(tmp_path)   # every base URL points at the fake
        ...
    fake.requests  # every request: method, path, query, headers, form, number
"""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from scenery.config import Settings
from tests.fakes.reddit_posts import listing
from tests.fakes.serving import serve

JSON = "application/json; charset=UTF-8"
HOLD_LIMIT = 60.0  # seconds a held request waits for its release before the test is broken


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    number: int  # 1-based, over every path
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Fault:
    """A canned bad answer for requests matching ``path`` (a glob) and/or ``request_number``."""

    status: int | None = 500
    body: str | bytes = ""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # stall this long before answering (longer than a timeout = a hang)
    path: str | None = None
    request_number: int | None = None
    times: int | None = 1  # how many matching requests it answers; None: all of them
    # Hold matching requests until ``release`` is set (``arrived`` is set when one comes in);
    # with ``status=None`` the request is then answered as usual (a stalled host that recovers).
    release: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    # Answer with ``body`` slowly: ``stall_after`` bytes at once, then the rest one byte every
    # ``trickle`` seconds (a host that never quite times out) or, without ``trickle``, nothing
    # until ``resume`` is set (a host that hangs mid-transfer). Content-Length is the whole.
    stall_after: int | None = None
    trickle: float | None = None
    resume: threading.Event = field(default_factory=threading.Event)

    def matches(self, path: str, number: int) -> bool:
        """Whether this fault answers the request."""
        if self.times is not None and self.times <= 0:
            return False
        if self.request_number is not None and self.request_number != number:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)


@dataclass(frozen=True)
class FakeFile:
    """Bytes served at a path."""

    body: bytes
    content_type: str = "image/jpeg"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class FakeReddit:
    """Reddit listings (public and OAuth), imgur and flickr APIs, and files, with faults."""

    def __init__(
        self,
        *,
        client_id: str = "fake-app-id",
        client_secret: str = "fake-app-secret",
        imgur_client_id: str = "fake-imgur-id",
        flickr_api_key: str = "fake-flickr-key",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.imgur_client_id = imgur_client_id
        self.flickr_api_key = flickr_api_key
        self.base_url: str | None = None
        self._lock = threading.Lock()
        self.reset()
        self.app = self._build_app()

    def reset(self) -> None:
        """Forget every post, file, fault, request and token (to reuse one running server)."""
        self.token_lifetime = 86_400
        self.ratelimit_remaining = 595.0
        self.ratelimit_reset = 300
        self.ratelimit_used = 5
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.refusals: dict[str, tuple[int, str]] = {}
        self.files: dict[str, FakeFile] = {}
        self.albums: dict[str, list[dict[str, Any]]] = {}
        self.flickr_photos: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.tokens: set[str] = set()
        self.tokens_issued = 0

    # -- setting up --------------------------------------------------------------------------

    def add_posts(self, subreddit: str, posts: list[dict[str, Any]]) -> None:
        """Append post ``data`` dicts to a subreddit's listing (first = newest)."""
        self.posts.setdefault(subreddit.lower(), []).extend(posts)

    def refuse(self, subreddit: str, status: int = 403, reason: str = "private") -> None:
        """Make a subreddit answer like a private (403) or banned (404) one."""
        self.refusals[subreddit.lower()] = (status, reason)

    def add_file(
        self,
        path: str,
        body: bytes,
        content_type: str = "image/jpeg",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve ``body`` at ``path``; return its full URL once running, else the path."""
        if not path.startswith("/"):
            path = "/" + path
        self.files[path] = FakeFile(body, content_type, status, dict(headers or {}))
        return self.url(path) if self.base_url else path

    def add_photo(self, path: str, photo: Path) -> str:
        """Serve a real photo file's bytes at ``path`` as image/jpeg; return its URL or path."""
        return self.add_file(path, photo.read_bytes(), "image/jpeg")

    def add_album(self, album_id: str, images: list[dict[str, Any]]) -> None:
        """Register an imgur album's image entries (see ``imgur_image``)."""
        self.albums[album_id] = images

    def add_flickr_photo(self, photo_id: str, sizes: list[dict[str, Any]]) -> None:
        """Register a flickr photo's ``getSizes`` entries (see ``flickr_size``)."""
        self.flickr_photos[photo_id] = sizes

    def fail(self, path: str | None = None, **fault: Any) -> Fault:
        """Add a fault (see ``Fault``) for requests matching ``path``; return it."""
        added = Fault(path=path, **fault)
        with self._lock:
            self.faults.append(added)
        return added

    def hold(self, path: str, times: int | None = 1) -> Fault:
        """Hold requests for ``path`` until the returned fault's ``release`` is set, then
        answer them as usual; ``fault.arrived`` tells when the first one came in."""
        return self.fail(path, status=None, release=threading.Event(), times=times)

    def revoke_tokens(self) -> None:
        """Forget every issued OAuth token, so the next bearer request gets a 401."""
        self.tokens.clear()

    # -- running -----------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve the fake on a free loopback port; yield its base URL."""
        with serve(self.app) as base:
            self.base_url = base
            try:
                yield base
            finally:
                self.base_url = None

    def url(self, path: str) -> str:
        """The full URL of ``path`` on the running fake."""
        if self.base_url is None:
            raise RuntimeError("the fake is not running; use `with fake.running():`")
        return self.base_url + path

    def settings(self, tmp_path: Path, **overrides: Any) -> Settings:
        """Settings aiming every Reddit, imgur and flickr URL at the running fake; fast retries."""
        base = self.url("")
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "reddit_base_url": base,
            "reddit_oauth_base_url": base + "/oauth",
            "imgur_api_base_url": base,
            "imgur_image_base_url": base + "/imgur",
            "flickr_api_base_url": base,
            "reddit_request_interval": 0,
            "reddit_max_tries": 3,
            "reddit_timeout": 2.0,
            "retry_backoff_base": 0.01,
            "retry_backoff_max": 0.05,
            "rate_limit_default_wait": 0.05,
            "download_connect_timeout": 2.0,
            "download_read_timeout": 2.0,
            "allow_private_urls": True,
            "clip_model": "tiny-test",
            "warm_up": False,
            "index_refresh_seconds": 0,
            # Random tiny-model weights put distinct photos close together: only near-identical
            # embeddings count as CLIP duplicates here; pHash catches the edited copies.
            "clip_duplicate_similarity": 0.9999,
            "clip_duplicate_borderline": 0.9998,
            # The model-based filters have their own tests and an end-to-end run of their own;
            # here the tiny random-weight model's gallery fit and CLIP NSFW scores would only
            # add noise (NudeNet stays on: it is real and landscape photos pass it).
            "gallery_fit": False,
            "nsfw_clip": False,
        }
        values.update(overrides)
        return Settings(**values)

    def paths(self) -> list[str]:
        """The path of every request so far, in order."""
        return [r.path for r in self.requests]

    def listing_requests(self) -> list[Recorded]:
        """The listing requests so far (public and OAuth)."""
        return [r for r in self.requests if r.path.endswith(".json") and "/r/" in r.path]

    # -- the WSGI app -------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.before_request(self._intercept)
        app.add_url_rule("/r/<sub>/<sort>.json", "listing", self._public_listing)
        app.add_url_rule("/oauth/r/<sub>/<sort>.json", "oauth_listing", self._oauth_listing)
        app.add_url_rule("/api/v1/access_token", "token", self._access_token, methods=["POST"])
        app.add_url_rule("/3/album/<album_id>/images", "imgur_album", self._imgur_album)
        app.add_url_rule("/services/rest/", "flickr", self._flickr)
        return app

    def _intercept(self) -> Response | None:
        """Record the request, then answer with a fault or a registered file if one matches."""
        with self._lock:
            number = len(self.requests) + 1
            self.requests.append(
                Recorded(
                    number=number,
                    method=request.method,
                    path=request.path,
                    query=request.args.to_dict(),
                    headers=dict(request.headers.items()),
                    form=request.form.to_dict(),
                )
            )
            fault = next((f for f in self.faults if f.matches(request.path, number)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is not None:
            fault.arrived.set()
            if fault.release is not None and not fault.release.wait(HOLD_LIMIT):
                raise RuntimeError("a held request was never released")
            if fault.delay:
                time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            if fault.stall_after is not None:
                return _stalling(fault)
            return Response(
                fault.body, fault.status, fault.headers, content_type=fault.content_type
            )
        found = self.files.get(request.path)
        if found is not None:
            return Response(
                found.body, found.status, found.headers, content_type=found.content_type
            )
        return None

    def _public_listing(self, sub: str, sort: str) -> Response:
        return self._listing(sub, sort)

    def _oauth_listing(self, sub: str, sort: str) -> Response:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return _json({"message": "Unauthorized", "error": 401}, 401)
        return self._listing(sub, sort)

    def _listing(self, sub: str, sort: str) -> Response:
        if sort not in ("new", "hot", "top", "rising", "controversial"):
            return _json({"message": "Not Found", "error": 404}, 404)
        refusal = self.refusals.get(sub.lower())
        if refusal is not None:
            status, reason = refusal
            message = "Forbidden" if status == 403 else "Not Found"
            return _json({"reason": reason, "message": message, "error": status}, status)
        if sub.lower() not in self.posts:
            return _json({"message": "Not Found", "error": 404}, 404)
        posts = self.posts[sub.lower()]
        start = 0
        after = request.args.get("after")
        if after:
            names = [p["name"] for p in posts]
            start = names.index(after) + 1 if after in names else len(posts)
        limit = max(1, min(int(request.args.get("limit", 25)), 100))
        page = posts[start : start + limit]
        next_after = page[-1]["name"] if page and start + limit < len(posts) else None
        response = _json(listing(page, next_after))
        response.headers["X-Ratelimit-Remaining"] = f"{self.ratelimit_remaining:.1f}"
        response.headers["X-Ratelimit-Reset"] = str(self.ratelimit_reset)
        response.headers["X-Ratelimit-Used"] = str(self.ratelimit_used)
        return response

    def _access_token(self) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _json({"message": "Unauthorized", "error": 401}, 401)
        if request.form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        token = secrets.token_urlsafe(20)
        with self._lock:
            self.tokens.add(token)
            self.tokens_issued += 1
        body = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": "*",
        }
        return _json(body)

    def _imgur_album(self, album_id: str) -> Response:
        if request.headers.get("Authorization") != f"Client-ID {self.imgur_client_id}":
            error = {"error": "Invalid client_id", "request": request.path, "method": "GET"}
            return _json({"data": error, "success": False, "status": 403}, 403)
        if album_id not in self.albums:
            error = {
                "error": f"Unable to find an album with the id, {album_id}",
                "request": request.path,
                "method": "GET",
            }
            return _json({"data": error, "success": False, "status": 404}, 404)
        return _json({"data": self.albums[album_id], "success": True, "status": 200})

    def _flickr(self) -> Response:
        args = request.args
        if args.get("api_key") != self.flickr_api_key:
            message = "Invalid API Key (Key has invalid format)"
            return _json({"stat": "fail", "code": 100, "message": message})
        if args.get("method") != "flickr.photos.getSizes":
            return _json({"stat": "fail", "code": 112, "message": "Method not found"})
        sizes = self.flickr_photos.get(args.get("photo_id", ""))
        if sizes is None:
            return _json({"stat": "fail", "code": 1, "message": "Photo not found"})
        body = {
            "sizes": {"canblog": 0, "canprint": 0, "candownload": 1, "size": sizes},
            "stat": "ok",
        }
        return _json(body)


def _stalling(fault: Fault) -> Response:
    """A fault's answer with its body sent as ``Fault.stall_after`` and ``Fault.trickle`` say."""
    body = fault.body.encode() if isinstance(fault.body, str) else fault.body
    first, rest = body[: fault.stall_after], body[fault.stall_after :]

    def send() -> Iterator[bytes]:
        yield first
        if fault.trickle is None:
            if not fault.resume.wait(HOLD_LIMIT):
                raise RuntimeError("a stalled body was never resumed")
            yield rest
            return
        for n in range(len(rest)):
            time.sleep(fault.trickle)
            yield rest[n : n + 1]

    headers = {**fault.headers, "Content-Length": str(len(body))}
    return Response(send(), fault.status, headers, content_type=fault.content_type)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type=JSON)


def imgur_image(
    image_id: str, width: int, height: int, type: str = "image/jpeg", link: str | None = None
) -> dict[str, Any]:
    """Return one entry of imgur's ``/3/album/<id>/images`` answer."""
    ext = {"image/png": "png", "image/gif": "gif", "video/mp4": "mp4"}.get(type, "jpg")
    return {
        "id": image_id,
        "title": None,
        "description": None,
        "datetime": 1_717_000_000,
        "type": type,
        "animated": type in ("image/gif", "video/mp4"),
        "width": width,
        "height": height,
        "size": width * height // 4,
        "views": 1520,
        "bandwidth": 0,
        "has_sound": False,
        "in_gallery": False,
        "link": link or f"https://i.imgur.com/{image_id}.{ext}",
    }


def flickr_size(label: str, width: int, height: int, source: str) -> dict[str, Any]:
    """Return one entry of flickr's ``photos.getSizes`` answer."""
    return {
        "label": label,
        "width": width,
        "height": height,
        "source": source,
        "url": "https://www.flickr.com/photos/someone/53712345678/sizes/",
        "media": "photo",
    }
