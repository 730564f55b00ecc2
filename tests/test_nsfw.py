"""NSFW filter: NudeNet and the CLIP prompt ensemble for real, the verdict arithmetic with stubs."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from scenery.config import Settings
from scenery.curation.nsfw import (
    EXPOSED_CLASSES,
    ClipNsfwScorer,
    Detection,
    NsfwFilter,
    NudeNetScorer,
    detector_input,
)
from scenery.curation.verdicts import BatchPreparing, Facts, Verdict
from scenery.embed import OpenClipEmbedder, normalise
from scenery.errors import ModelLoadError

DIM = 8


def thumbnail(path: Path) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((400, 400))
    return image


def facts_for(sha256: str, image: Image.Image, vector: np.ndarray) -> Facts:
    return Facts(sha256, image.width, image.height, "0" * 64, "0" * 64, vector, image)


@pytest.fixture(scope="module")
def nudenet() -> NudeNetScorer:
    return NudeNetScorer()


@pytest.fixture(scope="module")
def thumbs(photos: list[Path]) -> list[Image.Image]:
    return [thumbnail(p) for p in photos[:4]]


# -- NudeNet, for real -------------------------------------------------------------------------


def test_nudenet_scores_landscapes_below_the_threshold(
    nudenet: NudeNetScorer, thumbs: list[Image.Image]
) -> None:
    for image in thumbs:
        value, detections = nudenet.score(image)
        assert 0.0 <= value <= 1.0
        assert value < Settings.model_fields["nsfw_nudenet_threshold"].default
        assert isinstance(detections, list)


def test_nudenet_loads_the_detector_once_across_threads(
    monkeypatch: pytest.MonkeyPatch, thumbs: list[Image.Image]
) -> None:
    import nudenet

    built = []

    class Counting(nudenet.NudeDetector):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(nudenet, "NudeDetector", Counting)
    scorer = NudeNetScorer()
    threads = [threading.Thread(target=scorer.score, args=(thumbs[0],)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scorer.score(thumbs[1])
    scorer.score_batch(thumbs[:2])
    assert len(built) == 1


def test_nudenet_sees_the_image_as_its_own_path_route_does(
    nudenet: NudeNetScorer, thumbs: list[Image.Image], tmp_path: Path
) -> None:
    from nudenet.nudenet import _read_image

    # Modes a decoded image may arrive in; the scorer must lay each out as NudeNet reads a file.
    image = thumbs[0]
    for mode in ("RGB", "RGBA", "L", "P"):
        variant = image.convert(mode)
        path = tmp_path / f"{mode}.png"
        variant.save(path)
        assert np.array_equal(detector_input(variant), cv2.imread(str(path)))
        _, detections = nudenet.score(variant)
        assert detections == nudenet.load().detect(str(path))
    # The check has teeth: the network's input differs when handed PIL's RGB array as is.
    ours = _read_image(detector_input(image))[0]
    assert np.array_equal(ours, _read_image(str(tmp_path / "RGB.png"))[0])
    assert not np.array_equal(ours, _read_image(np.ascontiguousarray(np.asarray(image)))[0])


def test_nudenet_batch_matches_single_images(
    nudenet: NudeNetScorer, thumbs: list[Image.Image]
) -> None:
    assert nudenet.score_batch(thumbs) == [nudenet.score(image) for image in thumbs]
    assert nudenet.score_batch([]) == []


def test_nudenet_reports_a_broken_model_as_model_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "320n.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError, match="NudeNet"):
        NudeNetScorer(model_path=broken).score(Image.new("RGB", (32, 32)))


def test_exposed_classes_are_real_nudenet_labels() -> None:
    from nudenet import nudenet as module

    labels = set(vars(module)["__labels"])
    assert labels >= EXPOSED_CLASSES
    assert not any(c.endswith("_COVERED") or c.startswith("FACE_") for c in EXPOSED_CLASSES)


# -- CLIP prompt ensemble ------------------------------------------------------------------------


class AxisEmbedder:
    """Text embeds along axis 0 when it is in ``nsfw``, else axis 1, plus a per-prompt wobble."""

    name = "fake-axis"
    dim = DIM

    def __init__(self, nsfw: Sequence[str]) -> None:
        self.nsfw = set(nsfw)
        self.text_calls = 0

    def load(self) -> None:
        pass  # nothing to load

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise AssertionError("the CLIP signal must reuse the pipeline's image vectors")

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        rows = np.zeros((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            rows[i, 0 if text in self.nsfw else 1] = 1.0
            rows[i, 2 + i % (DIM - 2)] = 0.4  # prompts differ; their mean stays on the axis
        return normalise(rows)


def test_clip_ensemble_separates_the_class_directions() -> None:
    nsfw = ["a nude body", "pornography", "an explicit photo"]
    sfw = ["a landscape", "a city", "a dog", "a forest"]
    embedder = AxisEmbedder(nsfw)
    scorer = ClipNsfwScorer(embedder, nsfw_prompts=nsfw, sfw_prompts=sfw)
    sfw_dir, nsfw_dir = scorer.directions()
    assert np.allclose(np.linalg.norm(scorer.directions(), axis=1), 1.0, atol=1e-6)
    assert nsfw_dir[0] > 0.9 and sfw_dir[1] > 0.9
    p = scorer.probability(np.stack([nsfw_dir, sfw_dir, normalise((nsfw_dir + sfw_dir)[None])[0]]))
    assert p[0] > 0.99
    assert p[1] < 0.01
    assert p[2] == pytest.approx(0.5, abs=1e-4)  # equally close to both: a coin toss
    assert scorer.probability(nsfw_dir).shape == (1,)  # one vector is a batch of one
    assert embedder.text_calls == 1


def test_clip_probabilities_on_real_vectors_are_probabilities(
    tiny_embedder: OpenClipEmbedder, thumbs: list[Image.Image]
) -> None:
    scorer = ClipNsfwScorer(tiny_embedder)
    vectors = tiny_embedder.encode_images(thumbs)
    p = scorer.probability(vectors)
    assert p.shape == (len(thumbs),)
    assert np.all((p >= 0.0) & (p <= 1.0))
    # P(nsfw) is the second column of a two-way softmax over scaled cosine similarities.
    logits = 100.0 * vectors @ scorer.directions().T
    expected = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    assert np.allclose(p, expected, atol=1e-5)


# -- the filter's verdict arithmetic ------------------------------------------------------------


class FixedNudeNet(NudeNetScorer):
    """Reports the score stored in ``image.info["nudenet"]`` as a BUTTOCKS_EXPOSED detection."""

    def __init__(self) -> None:
        super().__init__()
        self.images_scored = 0

    def score(self, image: Image.Image) -> tuple[float, list[Detection]]:
        self.images_scored += 1
        value = float(image.info["nudenet"])
        return value, [{"class": "BUTTOCKS_EXPOSED", "score": value, "box": [0, 0, 1, 1]}]

    def score_batch(self, images: Sequence[Image.Image]) -> list[tuple[float, list[Detection]]]:
        return [self.score(image) for image in images]


class FixedClip(ClipNsfwScorer):
    """Reports each vector's first component as P(nsfw)."""

    def __init__(self) -> None:
        super().__init__(AxisEmbedder([]))
        self.calls = 0

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.atleast_2d(vectors)[:, 0].astype(np.float64)


def stub_facts(sha256: str, nudenet: float, clip: float) -> Facts:
    image = Image.new("RGB", (40, 30))
    image.info["nudenet"] = nudenet
    return facts_for(sha256, image, np.array([clip, 0.0, 0.0], np.float32))


@pytest.mark.parametrize(
    ("nudenet", "clip", "verdict"),
    [
        (0.0, 0.0, Verdict.PASS),
        (0.3499, 0.4999, Verdict.PASS),
        (0.35, 0.0, Verdict.BORDERLINE),
        (0.0, 0.5, Verdict.BORDERLINE),
        (0.5999, 0.7999, Verdict.BORDERLINE),
        (0.6, 0.0, Verdict.FAIL),
        (0.0, 0.8, Verdict.FAIL),
        (0.9, 0.6, Verdict.FAIL),
    ],
)
def test_verdict_follows_the_worst_signal(nudenet: float, clip: float, verdict: Verdict) -> None:
    nsfw = NsfwFilter(FixedNudeNet(), FixedClip())
    result = nsfw.check(stub_facts("a" * 64, nudenet, clip))
    assert result.filter == "nsfw"
    assert result.verdict == verdict
    assert result.code == ("ok" if verdict == Verdict.PASS else "nsfw")
    assert result.score == pytest.approx(max(nudenet / 0.6, clip / 0.8), abs=1e-4)
    assert f"nudenet {nudenet:.3f}" in result.reason and f"clip {clip:.3f}" in result.reason
    assert nsfw.signals(stub_facts("a" * 64, nudenet, clip)) == pytest.approx(
        {"nudenet": nudenet, "clip": clip}
    )


def test_reason_names_the_exposed_class_and_the_failed_threshold() -> None:
    result = NsfwFilter(FixedNudeNet(), FixedClip()).check(stub_facts("b" * 64, 0.72, 0.03))
    assert result.reason == "nudenet 0.720 (BUTTOCKS_EXPOSED) >= fail 0.6, clip 0.030"
    assert result.as_json()["verdict"] == "fail"


def test_prepare_scores_a_batch_once_and_check_reuses_it() -> None:
    nudenet, clip = FixedNudeNet(), FixedClip()
    nsfw = NsfwFilter(nudenet, clip)
    assert isinstance(nsfw, BatchPreparing)
    batch = [stub_facts(f"{i:064x}", 0.1 * i, 0.2 * i) for i in range(4)]
    nsfw.prepare(batch)
    assert (nudenet.images_scored, clip.calls) == (4, 1)  # CLIP as one matrix product
    prepared = [nsfw.check(f) for f in batch]
    nsfw.prepare(batch)
    assert (nudenet.images_scored, clip.calls) == (4, 1)
    alone = NsfwFilter(FixedNudeNet(), FixedClip())
    assert prepared == [alone.check(f) for f in batch]


def test_disabled_signals_are_skipped() -> None:
    facts = stub_facts("c" * 64, 0.99, 0.0)
    clip_only = NsfwFilter(None, FixedClip())
    assert clip_only.check(facts).verdict == Verdict.PASS
    assert clip_only.signals(facts) == {"clip": 0.0}
    nudenet_only = NsfwFilter(FixedNudeNet(), None)
    assert nudenet_only.check(facts).verdict == Verdict.FAIL
    assert "clip" not in nudenet_only.check(facts).reason


def test_from_settings_builds_what_is_enabled(tmp_path: Path) -> None:
    embedder = AxisEmbedder([])
    off = Settings(data_dir=tmp_path, nsfw_nudenet=False, nsfw_clip=False)
    assert NsfwFilter.from_settings(off, embedder) is None
    clip_only = Settings(data_dir=tmp_path, nsfw_nudenet=False, nsfw_clip_threshold=0.9)
    nsfw = NsfwFilter.from_settings(clip_only, embedder)
    assert nsfw is not None and nsfw.nudenet is None and nsfw.clip is not None
    assert nsfw.clip_limits == (0.9, 0.5)
    with pytest.raises(ValueError):
        NsfwFilter(None, None)


def test_real_filter_passes_landscapes_the_same_with_or_without_prepare(
    tiny_embedder: OpenClipEmbedder, nudenet: NudeNetScorer, thumbs: list[Image.Image]
) -> None:
    vectors = tiny_embedder.encode_images(thumbs)
    pairs = enumerate(zip(thumbs, vectors, strict=True))
    batch = [facts_for(f"{i:064x}", img, vector) for i, (img, vector) in pairs]
    prepared = NsfwFilter(nudenet, ClipNsfwScorer(tiny_embedder))
    prepared.prepare(batch)
    alone = NsfwFilter(nudenet, ClipNsfwScorer(tiny_embedder))
    assert [prepared.check(f) for f in batch] == [alone.check(f) for f in batch]
    assert all(prepared.signals(f)["nudenet"] < 0.35 for f in batch)
