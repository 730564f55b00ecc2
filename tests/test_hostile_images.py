"""Hostile images through search by image: each is refused by its header or answered normally,
never a 5xx; and the model never scales a strip up into a giant.

The time and memory each file takes are measured by ``bench/hostile_images.py``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from scenery.config import Settings
from scenery.embed import OpenClipEmbedder, model_view
from tests import badfiles
from tests.fakes.embedders import ColourEmbedder
from tests.helpers import PALETTE, import_colours
from web import create_app

GUARDS = ("aspect guard", "decode budget", "decompression bomb guard", "structure guard")


def sqlite_settings(root: Path) -> Settings:
    return Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'scenery.db'}",
        clip_model="tiny-test",
        index_refresh_seconds=0,
        warm_up=False,
    )


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, tiny_embedder: OpenClipEmbedder
) -> Iterator[Flask]:
    """A gallery of four colours behind the real (tiny) CLIP model, as a web worker runs it."""
    root = tmp_path_factory.mktemp("hostile")
    application = create_app(sqlite_settings(root), embedder=tiny_embedder)
    application.config["TESTING"] = True
    ctx = application.extensions["scenery"]
    import_colours(ctx, root / "colours", PALETTE)
    yield application
    ctx.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def search_by(client: FlaskClient, data: bytes, name: str = "upload.png") -> tuple[int, Any]:
    response = client.post("/api/search/image", data={"image": (io.BytesIO(data), name)})
    return response.status_code, response.get_json()


def test_a_13_kb_thin_strip_png_is_refused_from_its_header(client: FlaskClient) -> None:
    # The reported file: 100 x 1,000,000 pixels, under the 100 M pixel cap. It used to be
    # decoded whole and handed to CLIP, whose resize made it 224 x 2,240,000: 21 s, 4.7 GB.
    data = badfiles.png(100, 1_000_000, depth=1)
    assert len(data) < 16_000
    status, body = search_by(client, data)
    assert status == 400
    assert "aspect guard: 100x1000000" in body["message"]


@pytest.mark.parametrize(
    "hostile", [h for h in badfiles.HOSTILE if not h.heavy], ids=lambda h: h.name
)
def test_every_hostile_file_is_refused_or_answered(
    client: FlaskClient, hostile: badfiles.Hostile
) -> None:
    status, body = search_by(client, hostile.make())
    if hostile.refused:
        assert status == 400, body
        assert any(guard in body["message"] for guard in GUARDS), body["message"]
    else:
        assert status == 200, body
        assert len(body["results"]) == len(PALETTE)


class ExhaustedEmbedder(ColourEmbedder):
    """Embeds the gallery, then runs out of memory on every query."""

    exhausted = False

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self.exhausted:
            raise MemoryError
        return super().encode_images(images)


def test_a_query_the_model_runs_out_of_memory_on_is_a_clear_400(tmp_path: Path) -> None:
    embedder = ExhaustedEmbedder()
    application = create_app(sqlite_settings(tmp_path), embedder=embedder)
    import_colours(application.extensions["scenery"], tmp_path / "colours", PALETTE)
    embedder.exhausted = True
    photo = badfiles.saved(Image.new("RGB", (64, 48), "red"), "PNG")
    status, body = search_by(application.test_client(), photo)
    application.extensions["scenery"].close()
    assert status == 400
    assert "too large to embed" in body["message"]


def test_the_model_view_of_a_strip_is_cropped_not_scaled_up() -> None:
    strip = Image.new("RGB", (3, 30_000), "red")
    assert model_view(strip, 224).size == (3, 60)  # 20:1 around the centre, not 224 x 2.2 M
    wide = Image.new("RGB", (12_000, 500), "red")
    assert model_view(wide, 224).size == (8960, 448)  # cropped to 20:1, short side 2 x 224
    large = Image.new("RGB", (4000, 3000), "red")
    assert model_view(large, 224).size == (597, 448)
    grid = Image.effect_noise((400, 267), 40).convert("RGB")
    assert model_view(grid, 224).tobytes() == grid.tobytes()  # what the library embeds: as is


def test_the_embedder_gives_open_clip_the_bounded_view(tiny_embedder: OpenClipEmbedder) -> None:
    strip = Image.linear_gradient("L").resize((4, 4000)).convert("RGB")
    vectors = tiny_embedder.encode_images([strip, model_view(strip, 224)])
    assert np.all(np.isfinite(vectors))
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)
