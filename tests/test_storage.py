"""Files are content-addressed, written atomically, and never addressed outside the data dir."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from scenery.errors import NotFound
from scenery.imaging import encode_thumbnail
from scenery.storage import Storage, atomic_write

SHA = hashlib.sha256(b"x").hexdigest()


def test_original_lands_under_its_content_address(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    relpath = storage.save_original(SHA, "jpg", b"x")
    assert relpath == f"images/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg"
    assert (tmp_path / relpath).read_bytes() == b"x"


def test_failed_write_leaves_neither_file_nor_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "file.bin"

    def explode(handle: object) -> None:
        handle.write(b"half")  # type: ignore[attr-defined]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_rewrite_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, lambda h: h.write(b"first version, long"))
    atomic_write(target, lambda h: h.write(b"second"))
    assert target.read_bytes() == b"second"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", SHA[:-1], SHA.upper(), SHA + "/.."])
def test_refuses_anything_but_a_sha256(tmp_path: Path, bad: str) -> None:
    storage = Storage(tmp_path)
    with pytest.raises(NotFound):
        storage.original_path(bad, "jpg")
    with pytest.raises(NotFound):
        storage.thumb_path(bad, 400)


def test_refuses_unknown_extensions_and_sizes(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    with pytest.raises(NotFound):
        storage.original_path(SHA, "php")
    with pytest.raises(NotFound):
        storage.thumb_path(SHA, 123)


def test_thumbnails_are_jpeg_and_removable(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.save_original(SHA, "png", b"x")
    storage.save_thumbnail(SHA, 400, encode_thumbnail(Image.new("RGB", (400, 300))))
    assert storage.has_files(SHA, "png")
    assert Image.open(storage.thumb_path(SHA, 400)).format == "JPEG"
    storage.remove(SHA, "png")
    assert not storage.has_files(SHA, "png")
    assert not storage.original_path(SHA, "png").exists()
