"""Content-addressed files under the data dir: originals and JPEG thumbnails, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from scenery.config import GRID_THUMB, THUMB_SIZES
from scenery.errors import ImageRejected, NotFound
from scenery.imaging import THUMB_EXT, decode, encode_thumbnail, thumbnail

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Files are written before the commit of the row that names them (``scenery.intake``); one
# without a row is an orphan only once it is older than this. Writers touch a file they find
# already there, so a file about to be committed is always young.
ORPHAN_GRACE_SECONDS = 3600.0
EXTENSIONS = frozenset({"jpg", "png", "webp", "gif", "bmp", "tiff"})


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through ``write`` into a temp file beside it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _check_sha(sha256: str) -> str:
    if not SHA256_RE.fullmatch(sha256):
        raise NotFound("not a content address")
    return sha256


def _fanout(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class Storage:
    """Owns the ``images/`` and ``thumbs/`` trees of a data dir."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def original_relpath(self, sha256: str, ext: str) -> str:
        """The path of an original relative to the data dir: ``images/ab/cd/<sha256>.<ext>``."""
        if ext not in EXTENSIONS:
            raise NotFound(f"unknown extension {ext!r}")
        return f"images/{_fanout(_check_sha(sha256))}.{ext}"

    def original_path(self, sha256: str, ext: str) -> Path:
        return self.root / self.original_relpath(sha256, ext)

    def thumb_path(self, sha256: str, size: int) -> Path:
        if size not in THUMB_SIZES:
            raise NotFound(f"no thumbnail size {size}")
        return self.root / "thumbs" / str(size) / f"{_fanout(_check_sha(sha256))}.{THUMB_EXT}"

    def save_original(self, sha256: str, ext: str, data: bytes) -> str:
        """Store original bytes under their content address; return the relative path."""
        relpath = self.original_relpath(sha256, ext)
        path = self.root / relpath
        try:
            if path.stat().st_size == len(data):
                os.utime(path)  # young again: not an orphan until its row had time to commit
                return relpath
        except FileNotFoundError:
            pass
        atomic_write(path, lambda handle: handle.write(data))
        return relpath

    def save_thumbnail(self, sha256: str, size: int, encoded: bytes) -> None:
        """Store an encoded thumbnail (``encode_thumbnail``)."""
        atomic_write(self.thumb_path(sha256, size), lambda handle: handle.write(encoded))

    def has_files(self, sha256: str, ext: str) -> bool:
        """Whether the original and its grid thumbnail exist (larger ones come on demand)."""
        paths = [self.original_path(sha256, ext), self.thumb_path(sha256, GRID_THUMB)]
        return all(p.exists() for p in paths)

    def find_original(self, sha256: str) -> Path:
        """The stored original with this content hash, whatever its extension."""
        for ext in sorted(EXTENSIONS):
            path = self.original_path(sha256, ext)
            if path.exists():
                return path
        raise NotFound(f"no original {sha256}")

    def ensure_thumbnail(self, sha256: str, size: int, max_pixels: int) -> Path:
        """The thumbnail's path, rendering it from the original first if it is missing."""
        path = self.thumb_path(sha256, size)
        if not path.exists():
            original = self.find_original(sha256)
            try:
                decoded = decode(original.read_bytes(), max_pixels)
            except ImageRejected as exc:
                raise NotFound(f"original {sha256} cannot be decoded: {exc.reason}") from exc
            self.save_thumbnail(sha256, size, encode_thumbnail(thumbnail(decoded.image, size)))
        return path

    def is_young(self, path: Path, now: float | None = None) -> bool:
        """Whether a file may still be waiting for the commit of the row that names it."""
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return False
        return (time.time() if now is None else now) - mtime < ORPHAN_GRACE_SECONDS

    def remove(self, sha256: str, ext: str) -> None:
        """Delete an original and its thumbnails, if present."""
        self.original_path(sha256, ext).unlink(missing_ok=True)
        for size in THUMB_SIZES:
            self.thumb_path(sha256, size).unlink(missing_ok=True)
