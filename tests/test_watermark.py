"""Watermark detector: synthetic overlays, quadrant features, training, storage and the filter."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageOps

from scenery.config import Settings
from scenery.curation import watermark_synth
from scenery.curation.verdicts import BatchPreparing, Facts, Verdict
from scenery.curation.watermark import (
    DETAIL,
    WatermarkFilter,
    WatermarkModel,
    WatermarkTraining,
    detail_view,
    load_watermark,
    quadrant_views,
    save_watermark,
    train_watermark,
    watermark_features,
)
from scenery.curation.watermark_synth import KINDS, add_watermark
from scenery.embed import OpenClipEmbedder
from scenery.errors import ModelLoadError
from scenery.imaging import thumbnail


@pytest.fixture(scope="module")
def small_photos(photos: list[Path]) -> list[Image.Image]:
    """The sample photos decoded at about 800 px (JPEG draft mode keeps this fast)."""
    decoded = []
    for path in photos:
        with Image.open(path) as img:
            img.draft("RGB", (800, 800))
            decoded.append(thumbnail(img.convert("RGB"), 800))
    return decoded


@pytest.fixture(scope="module")
def training(tiny_embedder: OpenClipEmbedder, small_photos: list[Image.Image]) -> WatermarkTraining:
    return train_watermark(tiny_embedder, small_photos[:8], seed=3, variants_per_image=1)


class CountingEmbedder:
    """Passes calls to a real embedder and remembers the images of each ``encode_images``."""

    def __init__(self, inner: OpenClipEmbedder, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.dim = inner.dim
        self.calls: list[list[Image.Image]] = []

    def load(self) -> None:
        self.inner.load()

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.calls.append(list(images))
        return self.inner.encode_images(images)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode_text(texts)


class FixedProbability:
    """A stand-in fitted classifier that gives every row the same watermark probability."""

    classes_ = np.array([0, 1])

    def __init__(self, probability: float) -> None:
        self.probability = probability

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.tile([1 - self.probability, self.probability], (len(features), 1))


def facts_for(image: Image.Image, embedder: OpenClipEmbedder, detail: bool = False) -> Facts:
    thumb = thumbnail(image, 400)
    return Facts(
        sha256=hashlib.sha256(image.tobytes()).hexdigest(),
        width=image.width,
        height=image.height,
        phash="0" * 64,
        mirrored_phash="0" * 64,
        vector=embedder.encode_images([thumb])[0],
        image=thumb,
        detail=detail_view(image) if detail else None,
    )


def halves(n: int) -> tuple[slice, slice]:
    return slice(0, n // 2), slice(n // 2, n)


def changed(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.asarray(ImageChops.difference(a, b).convert("L")) > 0


# -- synthetic overlays -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_watermark_changes_pixels_of_a_copy(
    small_photos: list[Image.Image], kind: str
) -> None:
    original = small_photos[0]
    before = original.tobytes()
    marked = add_watermark(original, random.Random(1), kind=kind)
    assert marked.mode == "RGB" and marked.size == original.size
    assert changed(original, marked).any()
    assert original.tobytes() == before


def test_marks_stay_small_and_tiled_ones_spread_over_the_image(
    small_photos: list[Image.Image],
) -> None:
    rng = random.Random(7)
    for image in small_photos[:4]:
        for kind in ("copyright", "url", "handle", "signature", "logo"):
            assert changed(image, add_watermark(image, rng, kind=kind)).mean() < 0.1
        tiled = changed(image, add_watermark(image, rng, kind="tiled"))
        h, w = tiled.shape
        assert all(tiled[rows, cols].any() for rows in halves(h) for cols in halves(w))


def test_watermarks_are_deterministic_for_a_seed_and_differ_across_seeds(
    small_photos: list[Image.Image],
) -> None:
    image = small_photos[1]
    for make in (random.Random, np.random.default_rng):
        first = add_watermark(image, make(42)).tobytes()
        assert add_watermark(image, make(42)).tobytes() == first
        assert add_watermark(image, make(43)).tobytes() != first


def test_watermarks_fall_back_to_the_builtin_font(
    small_photos: list[Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watermark_synth, "font_files", lambda: ())
    image = small_photos[2]
    assert changed(image, add_watermark(image, random.Random(0), kind="copyright")).any()


def test_unknown_watermark_kind_is_refused(small_photos: list[Image.Image]) -> None:
    with pytest.raises(ValueError, match="unknown watermark kind"):
        add_watermark(small_photos[0], random.Random(0), kind="hologram")


# -- views and features -------------------------------------------------------------------------


def test_quadrants_tile_the_448_view(small_photos: list[Image.Image]) -> None:
    detail = detail_view(small_photos[0])
    assert detail.size == (DETAIL, DETAIL) and detail.mode == "RGB"
    quadrants = quadrant_views(detail)
    assert [q.size for q in quadrants] == [(224, 224)] * 4
    rebuilt = Image.new("RGB", detail.size)
    for quadrant, corner in zip(quadrants, [(0, 0), (224, 0), (0, 224), (224, 224)], strict=True):
        rebuilt.paste(quadrant, corner)
    assert rebuilt.tobytes() == detail.tobytes()


def test_features_join_four_quadrants_and_the_whole_in_one_encoding_call(
    tiny_embedder: OpenClipEmbedder, small_photos: list[Image.Image]
) -> None:
    images = small_photos[:3]
    whole = tiny_embedder.encode_images([thumbnail(i, 400) for i in images])
    counting = CountingEmbedder(tiny_embedder)
    features = watermark_features(counting, images, whole)
    assert features.shape == (3, 5 * 64) and features.dtype == np.float32
    assert np.array_equal(features[:, 4 * 64 :], whole)
    assert [len(call) for call in counting.calls] == [12]
    quadrants = tiny_embedder.encode_images(quadrant_views(detail_view(images[1])))
    assert np.allclose(features[1, : 4 * 64], quadrants.ravel(), atol=1e-5)
    # without ``whole``, the thumbnail is embedded as the pipeline embeds it
    assert np.allclose(watermark_features(tiny_embedder, images), features, atol=1e-5)


# -- training -----------------------------------------------------------------------------------


def test_trainer_holds_out_whole_photos_and_reports_its_confusion(
    tiny_embedder: OpenClipEmbedder, small_photos: list[Image.Image]
) -> None:
    photos = small_photos[:8]
    references = photos + [ImageOps.mirror(p) for p in photos]  # a mirror shares its photo's side
    groups = list(range(8)) * 2
    extra_positive = [add_watermark(small_photos[8], random.Random(0), kind="tiled")] * 2
    extra_negative = small_photos[9:11]
    seen: list[tuple[int, int]] = []
    result = train_watermark(
        tiny_embedder,
        references,
        groups=groups,
        extra_positives=extra_positive,
        extra_negatives=extra_negative,
        variants_per_image=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    # 2 of 8 photos held out, each twice (photo and mirror) and 3 times (clean + 2 marked),
    # and one of each pair of extras
    assert (result.n_test, result.n_train) == (2 * 2 * 3 + 2, 6 * 2 * 3 + 2)
    c = result.confusion
    assert sum(c.values()) == result.n_test
    assert (c["tp"] + c["fn"], c["tn"] + c["fp"]) == (2 * 2 * 2 + 1, 2 * 2 + 1)
    assert result.recall == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
    assert result.accuracy == pytest.approx((c["tp"] + c["tn"]) / result.n_test)
    assert seen[-1] == (20, 20)
    assert result.model.embedder_name == "tiny-test" and result.model.dim == 64
    # The tiny test model has random weights: it averages random projections of 32 px
    # patches and is blind to overlays (held-out accuracy ~0.5 even for opaque tiled text), so
    # this test checks the bookkeeping; the separation itself needs real CLIP weights (below).


def test_trainer_needs_two_references(
    tiny_embedder: OpenClipEmbedder, small_photos: list[Image.Image]
) -> None:
    with pytest.raises(ValueError, match="two reference"):
        train_watermark(tiny_embedder, small_photos[:1])


REAL_WEIGHTS = os.environ.get("SCENERY_TEST_CLIP_PRETRAINED", "")


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(REAL_WEIGHTS).is_file(),
    reason="needs real CLIP weights: SCENERY_TEST_CLIP_PRETRAINED=/path/to/checkpoint "
    "(SCENERY_TEST_CLIP_MODEL, default ViT-B-32); the tiny random model cannot see watermarks",
)
def test_trainer_separates_watermarked_from_clean_photos_held_out(
    small_photos: list[Image.Image],
) -> None:
    model = os.environ.get("SCENERY_TEST_CLIP_MODEL", "ViT-B-32")
    embedder = OpenClipEmbedder(model, REAL_WEIGHTS)
    references, groups = [], []
    for index, photo in enumerate(small_photos):
        w, h = photo.size
        references += [photo, ImageOps.mirror(photo), photo.crop((0, 0, w * 3 // 4, h * 3 // 4))]
        references.append(photo.crop((w // 4, h // 4, w, h)))
        groups += [index] * 4
    result = train_watermark(
        embedder, references, groups=groups, variants_per_image=3, test_share=0.3
    )
    assert result.accuracy >= 0.75 and result.recall >= 0.7, result


# -- storage ------------------------------------------------------------------------------------


def test_trained_model_survives_a_save_and_load(
    tmp_path: Path,
    training: WatermarkTraining,
    tiny_embedder: OpenClipEmbedder,
    small_photos: list[Image.Image],
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert load_watermark(settings) is None
    artifact = save_watermark(settings, training)
    assert artifact.meta["n_test"] == training.n_test
    assert artifact.meta["confusion"] == training.confusion
    assert artifact.meta["embedder"] == "tiny-test"
    loaded = load_watermark(settings)
    assert isinstance(loaded, WatermarkModel)
    features = watermark_features(tiny_embedder, small_photos[10:12])
    assert np.allclose(loaded.probability(features), training.model.probability(features))


# -- the filter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probability", "verdict", "code"),
    [
        (0.95, Verdict.FAIL, "watermark"),
        (0.85, Verdict.FAIL, "watermark"),  # at the threshold counts
        (0.6, Verdict.BORDERLINE, "watermark"),
        (0.5, Verdict.BORDERLINE, "watermark"),
        (0.2, Verdict.PASS, "ok"),
    ],
)
def test_filter_verdict_follows_the_thresholds(
    tiny_embedder: OpenClipEmbedder,
    small_photos: list[Image.Image],
    probability: float,
    verdict: Verdict,
    code: str,
) -> None:
    model = WatermarkModel(FixedProbability(probability), "tiny-test", 64)
    result = WatermarkFilter(model, tiny_embedder, 0.85, 0.5).check(
        facts_for(small_photos[0], tiny_embedder)
    )
    assert (result.filter, result.verdict, result.code) == ("watermark", verdict, code)
    assert result.score == pytest.approx(probability)
    assert result.reason == f"watermark probability {probability:.2f}"


def test_prepared_batch_gives_what_single_checks_give(
    tiny_embedder: OpenClipEmbedder, training: WatermarkTraining, small_photos: list[Image.Image]
) -> None:
    marked = add_watermark(small_photos[12], random.Random(5), kind="logo")
    batch = [
        facts_for(small_photos[11], tiny_embedder),
        facts_for(marked, tiny_embedder, detail=True),
        facts_for(small_photos[13], tiny_embedder, detail=True),
    ]
    counting = CountingEmbedder(tiny_embedder)
    prepared = WatermarkFilter(training.model, counting, 0.85, 0.5)
    assert isinstance(prepared, BatchPreparing)
    prepared.prepare(batch)
    assert [len(call) for call in counting.calls] == [12]  # quadrants only: vectors are given
    # the detail view is used when there is one; else the thumbnail is squashed to 448
    sent = counting.calls[0]
    assert sent[4].tobytes() == quadrant_views(batch[1].detail)[0].tobytes()
    assert sent[0].tobytes() == quadrant_views(detail_view(batch[0].image))[0].tobytes()
    batched = [prepared.check(facts) for facts in batch]
    assert len(counting.calls) == 1
    single = WatermarkFilter(training.model, tiny_embedder, 0.85, 0.5)
    for facts, result in zip(batch, batched, strict=True):
        alone = single.check(facts)
        assert alone.verdict == result.verdict
        assert alone.score == pytest.approx(result.score, abs=1e-5)


def test_filter_refuses_a_model_trained_on_another_embedder(
    tiny_embedder: OpenClipEmbedder, training: WatermarkTraining
) -> None:
    other = CountingEmbedder(tiny_embedder, name="ViT-B-32/laion2b_s34b_b79k")
    with pytest.raises(ModelLoadError, match="scenery train watermark"):
        WatermarkFilter(training.model, other, 0.85, 0.5)
