"""The watermark detector's quadrant views through the int8 ONNX image tower of the same model:
what a context trains with and scores with, and models saved before it keep their embedder."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scenery.config import Settings
from scenery.context import Context
from scenery.curation.chain import model_filters
from scenery.curation.verdicts import Facts
from scenery.curation.watermark import (
    WatermarkFilter,
    WatermarkTraining,
    detail_view,
    quadrant_views,
    save_watermark,
    train_watermark,
    watermark_features,
)
from scenery.errors import ModelLoadError
from scenery.imaging import thumbnail
from scenery.onnx_embed import OnnxClipEmbedder

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def own(settings: Settings) -> Iterator[Context]:
    """A context that builds its embedders from the settings (tiny-test on ONNX)."""
    context = Context(settings.model_copy(update={"nsfw_nudenet": False, "ocr_watermark": False}))
    context.migrate()
    yield context
    context.close()


@pytest.fixture(scope="module")
def views(photos: list[Path]) -> list[Image.Image]:
    out = []
    for path in photos[:8]:
        with Image.open(path) as img:
            img.draft("RGB", (800, 800))
            out.append(thumbnail(img.convert("RGB"), 800))
    return out


def trained(ctx: Context, views: list[Image.Image]) -> WatermarkTraining:
    return train_watermark(
        ctx.embedder, views, seed=1, variants_per_image=1, quadrants=ctx.quadrant_embedder
    )


def test_a_context_trains_and_scores_quadrants_with_the_int8_image_tower(
    own: Context, views: list[Image.Image]
) -> None:
    quadrants = own.quadrant_embedder
    assert isinstance(quadrants, OnnxClipEmbedder)
    assert quadrants.name == own.embedder.name + "+int8" and quadrants.dim == own.embedder.dim
    training = trained(own, views)
    assert training.model.embedder_name == own.embedder.name
    assert training.model.quadrants_by == quadrants.name
    assert training.meta()["quadrants"] == quadrants.name
    save_watermark(own.settings, training)
    [built] = [f for f in model_filters(own) if isinstance(f, WatermarkFilter)]
    assert built.quadrants is quadrants and built.embedder is own.embedder
    # scores are the model's probability on int8 quadrants and the main model's whole vector
    image = views[3]
    small = thumbnail(image, 400)
    vector = own.embedder.encode_images([small])[0]
    facts = Facts("x", *image.size, "", "", vector, small, detail_view(image))
    parts = quadrants.encode_images(quadrant_views(detail_view(image))).reshape(1, -1)
    expected = training.model.probability(np.hstack([parts, vector[None, :]]))[0]
    assert built.check(facts).score == pytest.approx(expected, abs=1e-6)
    fp32 = own.embedder.encode_images(quadrant_views(detail_view(image))).reshape(1, -1)
    assert not np.allclose(parts, fp32, atol=1e-6)  # it really is another graph
    # the image tower alone was opened: no text graph held for the detector
    assert quadrants._load().text is None
    with pytest.raises(ModelLoadError, match="images only"):
        quadrants.encode_text(["a lake"])


def test_a_model_saved_before_int8_quadrants_keeps_the_main_model_for_them(
    own: Context, views: list[Image.Image]
) -> None:
    old = train_watermark(own.embedder, views, seed=1, variants_per_image=1)
    model = dataclasses.replace(old.model, quadrant_name=None)  # as older artifacts load
    save_watermark(own.settings, dataclasses.replace(old, model=model))
    [built] = [f for f in model_filters(own) if isinstance(f, WatermarkFilter)]
    assert built.quadrants is own.embedder
    features = watermark_features(own.embedder, views[:2])
    batch = [
        Facts(str(i), 1, 1, "", "", row[-own.embedder.dim :], thumbnail(v, 400), detail_view(v))
        for i, (row, v) in enumerate(zip(features, views[:2], strict=True))
    ]
    scores = [built.check(facts).score for facts in batch]
    assert np.allclose(model.probability(features), scores, atol=1e-6)
    int8 = own.__dict__.get("quadrant_embedder")  # built for the chain, never loaded
    assert int8 is None or getattr(int8, "_loaded", None) is None


def test_int8_quadrants_off_or_a_given_embedder_use_the_main_model(
    settings: Settings, tiny_embedder: object
) -> None:
    off = Context(settings.model_copy(update={"watermark_int8": False}))
    given = Context(settings, embedder=tiny_embedder)  # type: ignore[arg-type]
    try:
        assert off.quadrant_embedder is off.embedder
        assert given.quadrant_embedder is given.embedder
    finally:
        off.close()
        given.close()


def test_a_detector_refuses_quadrants_from_another_embedder(
    own: Context, views: list[Image.Image]
) -> None:
    training = trained(own, views)
    with pytest.raises(ModelLoadError, match="scenery train watermark"):
        WatermarkFilter(training.model, own.embedder, 0.85, 0.5)  # fp32 quadrants: not trained
    WatermarkFilter(training.model, own.embedder, 0.85, 0.5, own.quadrant_embedder)
