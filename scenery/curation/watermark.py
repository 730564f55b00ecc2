"""Watermark detector: CLIP features of a photo's four quadrants and of the whole -> classifier.

Small watermarks vanish when a photo is squeezed to the 224 px that CLIP sees; the four 224 px
quadrants of a 448 px view keep them (the reference system: 97-98% accuracy with quadrants,
93-95% with the whole image only). The classifier learns from the gallery's own images, clean
and with synthetic watermarks (``watermark_synth``), plus any watermarks an admin rejected.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from scenery.config import Settings
from scenery.curation.artifacts import Artifact, load_latest, save_artifact
from scenery.curation.verdicts import Facts, FilterResult, Verdict, band_margin
from scenery.curation.watermark_synth import add_watermark
from scenery.embed import Embedder
from scenery.errors import ModelLoadError
from scenery.imaging import thumbnail

log = logging.getLogger(__name__)

KIND = "watermark"
DETAIL = 448
QUADRANT = DETAIL // 2
WHOLE_EDGE = 400  # the grid thumbnail whose embedding the pipeline already has
WORK_EDGE = 2 * DETAIL  # references shrink to this first: only the 448 and 400 px views count
CHUNK = 32  # references per encoding batch while training; bounds the images held in memory
RETRAIN = "run `scenery train watermark` again"


def detail_view(image: Image.Image) -> Image.Image:
    """Squash an image to the 448x448 RGB view whose quadrants the detector looks at."""
    rgb = image.convert("RGB")
    if rgb.size == (DETAIL, DETAIL):
        return rgb
    return rgb.resize((DETAIL, DETAIL), Image.Resampling.BICUBIC)


def quadrant_views(detail: Image.Image) -> list[Image.Image]:
    """Cut a 448x448 view into its four 224x224 quadrants: TL, TR, BL, BR."""
    q = QUADRANT
    return [detail.crop((x, y, x + q, y + q)) for y in (0, q) for x in (0, q)]


def watermark_features(
    embedder: Embedder,
    images: Sequence[Image.Image],
    whole: np.ndarray | None = None,
    quadrants: Embedder | None = None,
) -> np.ndarray:
    """Embed each image's four quadrants and whole: float32 rows of 5 * dim.

    ``images`` are full images (a 448x448 one is taken as its own detail view); ``whole``
    holds their thumbnail embeddings (by ``embedder``) when the caller already has them;
    ``quadrants`` embeds the quadrant views (default: ``embedder``; the int8 image tower of the
    same model in ingest, ``Context.quadrant_embedder``).
    """
    if not images:
        return np.zeros((0, 5 * embedder.dim), np.float32)
    views = [q for image in images for q in quadrant_views(detail_view(image))]
    parts = (quadrants or embedder).encode_images(views).reshape(len(images), -1)
    if whole is None:
        thumbs = [thumbnail(image.convert("RGB"), WHOLE_EDGE) for image in images]
        whole = embedder.encode_images(thumbs)
    whole = np.asarray(whole, np.float32).reshape(len(images), -1)
    return np.hstack([parts, whole]).astype(np.float32)


@dataclass
class WatermarkModel:
    """A fitted classifier over ``watermark_features`` of one embedder."""

    classifier: Any  # a fitted sklearn estimator with predict_proba
    embedder_name: str  # what embedded the whole images (the gallery's own vectors)
    dim: int
    # What embedded the quadrant views; None (models saved before it was recorded): the same
    quadrant_name: str | None = None

    @property
    def quadrants_by(self) -> str:
        """The name of the embedder the quadrant views must go through."""
        return self.quadrant_name or self.embedder_name

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Return each row's probability of carrying a watermark."""
        features = np.asarray(features, np.float32).reshape(-1, 5 * self.dim)
        if not len(features):
            return np.zeros(0)
        column = list(self.classifier.classes_).index(1)
        return np.asarray(self.classifier.predict_proba(features)[:, column], np.float64)


@dataclass
class WatermarkTraining:
    """A fitted model and how it did on the held-out references."""

    model: WatermarkModel
    precision: float
    recall: float
    accuracy: float
    n_train: int
    n_test: int
    confusion: dict[str, int]

    def meta(self) -> dict[str, Any]:
        """Describe the model and its held-out scores for the artifact's meta.json."""
        return {
            "embedder": self.model.embedder_name,
            "quadrants": self.model.quadrants_by,
            "dim": self.model.dim,
            "precision": self.precision,
            "recall": self.recall,
            "accuracy": self.accuracy,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "confusion": self.confusion,
        }


def _classifier(seed: int) -> Any:
    # Standardised, class-balanced logistic regression, the usual linear probe on CLIP features:
    # it fits in about a second and its probabilities behave under thresholds. The tiny
    # random-weight test model is blind to overlays, so nothing separates on it (logistic
    # regression ~0.5 held out; a small MLPClassifier did no better and collapsed onto "all
    # watermarked"); an MLP, as in the reference system, can replace this once measured on
    # real weights.
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000, random_state=seed),
    )


def _test_keys(keys: Sequence[Hashable], share: float, rng: random.Random) -> set[Hashable]:
    """Draw a share of the distinct keys (at least one, never all) for the held-out side."""
    unique = list(dict.fromkeys(keys))
    if len(unique) < 2 or share <= 0:
        return set()
    rng.shuffle(unique)
    return set(unique[: min(len(unique) - 1, max(1, round(share * len(unique))))])


def train_watermark(
    embedder: Embedder,
    references: Sequence[Image.Image],
    *,
    seed: int = 0,
    extra_positives: Sequence[Image.Image] = (),
    extra_negatives: Sequence[Image.Image] = (),
    test_share: float = 0.25,
    variants_per_image: int = 2,
    groups: Sequence[Hashable] | None = None,
    progress: Callable[[int, int], None] | None = None,
    quadrants: Embedder | None = None,
) -> WatermarkTraining:
    """Fit a detector on clean references and watermarked copies; score it on held-out ones.

    ``groups`` names each reference's source (crops of one photo share a group) so that no
    source lands on both sides of the split. Images are read ``CHUNK`` at a time, so the
    sequences may load lazily; ``progress(done, total)`` follows the encoding. ``quadrants``
    embeds the quadrant views (default ``embedder``); the model records which did.
    """
    if len(references) < 2:
        raise ValueError("watermark training needs at least two reference images")
    groups = list(groups) if groups is not None else list(range(len(references)))
    if len(groups) != len(references):
        raise ValueError("groups must name one source per reference image")
    rng = random.Random(seed)
    held_refs = _test_keys(groups, test_share, rng)
    held_pos = _test_keys(range(len(extra_positives)), test_share, rng)
    held_neg = _test_keys(range(len(extra_negatives)), test_share, rng)
    # (images, index, label, synthesise watermarked copies?, held out?)
    entries = [(references, i, 0, True, g in held_refs) for i, g in enumerate(groups)]
    entries += [(extra_positives, i, 1, False, i in held_pos) for i in range(len(extra_positives))]
    entries += [(extra_negatives, i, 0, False, i in held_neg) for i in range(len(extra_negatives))]
    quadrants = quadrants or embedder
    features, labels, held = _encode(
        (embedder, quadrants), entries, variants_per_image, rng, progress
    )
    classifier = _classifier(seed).fit(features[~held], labels[~held])
    model = WatermarkModel(classifier, embedder.name, embedder.dim, quadrants.name)
    result = _score(model, features[held], labels[held], n_train=int((~held).sum()))
    log.info("watermark detector trained: %s", result.meta())
    return result


Entry = tuple[Sequence[Image.Image], int, int, bool, bool]


def _encode(
    embedders: tuple[Embedder, Embedder],
    entries: Sequence[Entry],
    variants: int,
    rng: random.Random,
    progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and held-out flags of every entry and synthetic variant, chunk by chunk."""
    rows: list[np.ndarray] = []
    labels: list[int] = []
    held: list[bool] = []
    for start in range(0, len(entries), CHUNK):
        images: list[Image.Image] = []
        for source, index, label, synthesise, is_held in entries[start : start + CHUNK]:
            work = thumbnail(source[index].convert("RGB"), WORK_EDGE)
            marked = [add_watermark(work, rng) for _ in range(variants if synthesise else 0)]
            images += [work, *marked]
            labels += [label] + [1] * len(marked)
            held += [is_held] * (1 + len(marked))
        whole, quadrants = embedders
        rows.append(watermark_features(whole, images, quadrants=quadrants))
        if progress is not None:
            progress(min(start + CHUNK, len(entries)), len(entries))
    return np.vstack(rows), np.array(labels), np.array(held, dtype=bool)


def _score(
    model: WatermarkModel, features: np.ndarray, labels: np.ndarray, n_train: int
) -> WatermarkTraining:
    predicted = model.probability(features) >= 0.5
    actual = labels == 1
    confusion = {
        "tp": int((predicted & actual).sum()),
        "fp": int((predicted & ~actual).sum()),
        "tn": int((~predicted & ~actual).sum()),
        "fn": int((~predicted & actual).sum()),
    }
    tp, fp, fn = confusion["tp"], confusion["fp"], confusion["fn"]
    return WatermarkTraining(
        model=model,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        accuracy=float((predicted == actual).mean()) if len(labels) else 0.0,
        n_train=n_train,
        n_test=len(labels),
        confusion=confusion,
    )


def save_watermark(settings: Settings, training: WatermarkTraining) -> Artifact:
    """Store a trained detector as the newest watermark artifact."""
    return save_artifact(settings, KIND, {"model": training.model}, training.meta())


def load_watermark(settings: Settings) -> WatermarkModel | None:
    """Load the newest trained detector, or None when none was trained yet."""
    artifact = load_latest(settings, KIND)
    if artifact is None:
        return None
    model = artifact.objects.get("model")
    if not isinstance(model, WatermarkModel):
        raise ModelLoadError(f"watermark artifact {artifact.path} holds no model; {RETRAIN}")
    return model


class WatermarkFilter:
    """Fails or queues candidates by their probability of carrying a watermark."""

    name = "watermark"

    def __init__(
        self,
        model: WatermarkModel,
        embedder: Embedder,
        threshold: float,
        borderline: float,
        quadrants: Embedder | None = None,
    ) -> None:
        quadrants = quadrants or embedder
        for trained, now in ((model.embedder_name, embedder), (model.quadrants_by, quadrants)):
            if trained != now.name:
                raise ModelLoadError(
                    f"the watermark detector was trained on {trained} embeddings but "
                    f"the CLIP model is now {now.name}; {RETRAIN}"
                )
        self.model = model
        self.embedder = embedder
        self.quadrants = quadrants
        self.threshold = threshold
        self.borderline = borderline
        self._cache: dict[str, float] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, embedder: Embedder, quadrants: Embedder | None = None
    ) -> WatermarkFilter | None:
        """Build the filter from the newest trained model, or None when none was trained.

        ``quadrants``: the embedder new trainings use for the quadrant views; a model trained
        with ``embedder`` for them (before int8 quadrants, or with them off) keeps using it."""
        model = load_watermark(settings)
        if model is None:
            return None
        if quadrants is None or model.quadrants_by == embedder.name:
            quadrants = embedder
        return cls(
            model,
            embedder,
            settings.watermark_threshold,
            settings.watermark_borderline,
            quadrants,
        )

    def prepare(self, batch: Sequence[Facts]) -> None:
        """Score a whole batch in one encoding pass; ``check`` then reads the scores."""
        self._cache = dict(zip((f.sha256 for f in batch), self._probabilities(batch), strict=True))

    def check(self, facts: Facts) -> FilterResult:
        """Judge one candidate by its watermark probability (scored now if not prepared)."""
        probability = self._cache.get(facts.sha256)
        if probability is None:
            probability = self._probabilities([facts])[0]
        reason = f"watermark probability {probability:.2f}"
        margin = band_margin(probability, self.borderline, self.threshold)
        if probability >= self.threshold:
            verdict, code = Verdict.FAIL, "watermark"
        elif probability >= self.borderline:
            verdict, code = Verdict.BORDERLINE, "watermark"
        else:
            verdict, code = Verdict.PASS, "ok"
        return FilterResult(self.name, verdict, probability, reason, code, margin=margin)

    def _probabilities(self, batch: Sequence[Facts]) -> list[float]:
        if not batch:
            return []
        views = [f.detail if f.detail is not None else f.image for f in batch]
        whole = np.stack([f.vector for f in batch])
        features = watermark_features(self.embedder, views, whole, self.quadrants)
        return [float(p) for p in self.model.probability(features)]
