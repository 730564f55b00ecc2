"""The fetch tests' fake image host and builders (fixtures in conftest: ``image_host``,
``fetcher``, ``fetch_sleeps``, ``download_dir``)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scenery.config import Settings
from tests.fakes.files_server import FileServerState, make_files_app
from tests.fakes.serving import serve

PUBLIC_IP = "93.184.216.34"


class Host:
    """The fake image host: its base URL and what it observed."""

    def __init__(self, url: str, state: FileServerState, jpeg: bytes) -> None:
        self.url = url
        self.state = state
        self.jpeg = jpeg
        self.port = int(url.rsplit(":", 1)[1])

    def hits(self, path: str) -> int:
        return self.state.hits[path]


@contextmanager
def hosting(jpeg: bytes) -> Iterator[Host]:
    """Serve the fake image host around one real JPEG."""
    app, state = make_files_app(jpeg)
    with serve(app) as url:
        yield Host(url, state, jpeg)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a fetcher: loopback allowed, short timeouts, fast retries, a 1 MB cap."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "allow_private_urls": True,
        "retry_backoff_base": 0.01,
        "retry_backoff_max": 0.02,
        "download_read_timeout": 0.3,
        "download_connect_timeout": 0.5,
        "download_max_bytes": 1024 * 1024,
    }
    return Settings(**(values | overrides))


class Sleeps(list[float]):
    """Records the waits a fetcher asks for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fake_resolver(
    table: dict[str, list[str]], calls: list[str] | None = None
) -> Callable[[str, int], list[str]]:
    """A resolver answering from ``table`` (unknown names: "not known"), recording each name."""

    def resolve(name: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(name)
        if name not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[name]

    return resolve


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []
