"""A fault-injecting image host: real files, lies, slow bodies, redirects, rate limits."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import Flask, Response, redirect, request
from PIL import Image

HUGE_BYTES = 200 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff\xe0"
HTML = b"<!doctype html><html><head><title>Not found</title></head><body>gone</body></html>"


@dataclass
class FileServerState:
    """What the fake host saw: requests per path, bytes it streamed, concurrency high-water."""

    hits: Counter[str] = field(default_factory=Counter)
    huge_bytes_sent: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Forget everything seen so far (one server serves many tests)."""
        with self.lock:
            self.hits.clear()
            self.huge_bytes_sent = self.in_flight = self.max_in_flight = 0


def small_png() -> bytes:
    """A 32x24 PNG made on the spot."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 80, 40)).save(buf, "PNG")
    return buf.getvalue()


def make_files_app(jpeg: bytes, *, slow_seconds: float = 1.0) -> tuple[Flask, FileServerState]:
    """Build the fake host around one real JPEG; return the app and its observations."""
    app = Flask(__name__)
    state = FileServerState()
    png = small_png()

    @app.before_request
    def count() -> None:
        with state.lock:
            state.hits[request.path] += 1

    def hits() -> int:
        return state.hits[request.path]

    @app.get("/photo.jpg")
    def photo() -> Response:
        return Response(jpeg, mimetype="image/jpeg")

    @app.get("/image.png")
    def image_png() -> Response:
        return Response(png, mimetype="image/png")

    @app.get("/truncated.jpg")
    def truncated() -> Response:
        # A file cut short at its source: the transfer itself is complete and honest.
        return Response(jpeg[: len(jpeg) // 2], mimetype="image/jpeg")

    @app.get("/short-body.jpg")
    def short_body() -> Response:
        # Promise the whole file, send half, hang up (Connection: close makes werkzeug close).
        headers = {"Content-Length": str(len(jpeg)), "Connection": "close"}
        return Response(iter([jpeg[: len(jpeg) // 2]]), mimetype="image/jpeg", headers=headers)

    @app.get("/page.jpg")
    def html_as_jpeg() -> Response:
        return Response(HTML, mimetype="image/jpeg")

    def huge_body() -> Iterator[bytes]:
        chunk = bytes(64 * 1024)
        yield JPEG_MAGIC + chunk[len(JPEG_MAGIC) :]
        for _ in range(HUGE_BYTES // len(chunk) - 1):
            with state.lock:
                state.huge_bytes_sent += len(chunk)
            yield chunk

    @app.get("/huge.jpg")
    def huge() -> Response:
        headers = {"Content-Length": str(HUGE_BYTES)}
        return Response(huge_body(), mimetype="image/jpeg", headers=headers)

    @app.get("/huge-unsized.jpg")
    def huge_unsized() -> Response:
        return Response(huge_body(), mimetype="image/jpeg")  # chunked: no Content-Length

    @app.get("/slow.jpg")
    def slow() -> Response:
        def body() -> Iterator[bytes]:
            yield jpeg[:1024]
            time.sleep(slow_seconds)
            yield jpeg[1024:]

        return Response(body(), mimetype="image/jpeg")

    @app.get("/busy.jpg")
    def busy() -> Response:
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        time.sleep(0.15)
        with state.lock:
            state.in_flight -= 1
        return Response(jpeg, mimetype="image/jpeg")

    @app.get("/flaky.jpg")
    def flaky() -> Response:
        if hits() == 1:
            return Response("upstream hiccup", status=500)
        return Response(jpeg, mimetype="image/jpeg")

    @app.get("/broken.jpg")
    def broken() -> Response:
        return Response("always down", status=503)

    @app.get("/rate-limited.jpg")
    def rate_limited() -> Response:
        if hits() == 1:
            return Response("slow down", status=429, headers={"Retry-After": "7"})
        return Response(jpeg, mimetype="image/jpeg")

    @app.get("/missing.jpg")
    def missing() -> Response:
        return Response("no such file", status=404)

    @app.get("/chain/<int:n>")
    def chain(n: int) -> Response:
        # Alternate relative and absolute Locations so both are resolved.
        if n == 0:
            return redirect("/photo.jpg", code=301)
        target = f"{n - 1}" if n % 2 else f"{request.host_url}chain/{n - 1}"
        return redirect(target, code=302)

    @app.get("/loop")
    def loop() -> Response:
        return redirect("/loop", code=302)

    @app.get("/redirect")
    def redirect_to() -> Response:
        return redirect(request.args["to"], code=302)

    return app, state
