"""NSFW filter: NudeNet's exposed-body-part detector and a zero-shot CLIP prompt ensemble.

nudenet (onnxruntime, opencv) is imported inside functions so that the CLI and the web app
start fast; the CLIP signal reuses the image vector the pipeline already has.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scenery.config import Settings
from scenery.curation.verdicts import Facts, FilterResult, Verdict, band_margin
from scenery.embed import Embedder, normalise
from scenery.errors import ModelLoadError
from scenery.onnx_sessions import quiet_session

log = logging.getLogger(__name__)

# NudeNet 3.x labels that count as nudity. Left out on purpose: MALE_BREAST_EXPOSED,
# BELLY_EXPOSED, ARMPITS_EXPOSED and FEET_EXPOSED (shirtless hikers, swimmers and beach-goers
# are ordinary in outdoor photos), every *_COVERED class (clothed or in swimwear) and FACE_*.
# BUTTOCKS_EXPOSED stays in: it is nudity, and the rarer thong-at-the-beach false positive
# mostly lands between the borderline and the threshold, i.e. in the review queue.
EXPOSED_CLASSES = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "ANUS_EXPOSED",
        "BUTTOCKS_EXPOSED",
    }
)

NSFW_PROMPTS = (
    "a photo of a naked person",
    "a photo of a nude woman",
    "a photo of a nude man",
    "a nude body",
    "an explicit sexual photo",
    "pornography",
    "a photo of people having sex",
    "an erotic photo",
    "a topless woman",
    "exposed genitals",
)
# Broad on purpose: the SFW side must cover what a scenery gallery really receives, so that
# a sunset is never "closer to nudity" merely because no SFW prompt describes it.
SFW_PROMPTS = (
    "a landscape photo",
    "a photo of mountains",
    "a photo of a forest",
    "a photo of the sea and a beach",
    "a photo of a lake at sunset",
    "a photo of a desert",
    "a photo of a waterfall",
    "a photo of a city skyline",
    "a photo of a building",
    "a photo of a street",
    "a photo of a clothed person",
    "a photo of people wearing clothes outdoors",
    "a photo of hikers on a trail",
    "a photo of an animal",
    "a photo of a flower",
    "a painting or an illustration",
)
CLIP_LOGIT_SCALE = 100.0  # CLIP's trained temperature

Detection = dict[str, Any]  # NudeNet's {"class": label, "score": confidence, "box": [x, y, w, h]}


def detector_input(image: Image.Image) -> np.ndarray:
    """Lay out an image as NudeNet's own path route reads it: uint8 BGR, C-contiguous."""
    # NudeDetector.detect(path) reads with cv2.imread (BGR); its preprocessing then swaps the
    # channels twice (cvtColor RGBA2BGR on 3 channels, blobFromImage swapRB), so the network
    # sees BGR. Handing it PIL's RGB array would silently feed it swapped colours.
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def top_exposed(detections: Sequence[Detection], classes: Collection[str]) -> Detection:
    """Return the most confident detection of an exposed class, or an empty dict."""
    exposed = [d for d in detections if d["class"] in classes]
    return max(exposed, key=lambda d: float(d["score"]), default={})


class NudeNetScorer:
    """NudeNet's detector (320n.onnx from its wheel), loaded on first use."""

    def __init__(
        self,
        model_path: Path | None = None,
        classes: Collection[str] = EXPOSED_CLASSES,
        batch_size: int = 4,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.classes = frozenset(classes)
        self.batch_size = batch_size
        self.threads = threads  # onnxruntime intra-op threads; None: its default (all cores)
        self._lock = threading.Lock()
        self._detector: Any = None

    def load(self) -> Any:
        """Load the detector now (once) and return it."""
        with self._lock:
            if self._detector is None:
                self._detector = self._build()
            return self._detector

    def _build(self) -> Any:
        where = str(self.model_path) if self.model_path else "320n.onnx from the nudenet wheel"
        log.info("loading NudeNet detector (%s)", where)
        try:
            import nudenet

            path = str(self.model_path or Path(nudenet.__file__).parent / "320n.onnx")
            detector = nudenet.NudeDetector(model_path=path)
            # NudeDetector takes no session options, and its default session spins idle
            # threads: on 2 cores beside one busy core (ingest decodes and runs CLIP beside
            # it) that took 84-118 ms/image against 40-57 ms without spinning (idle: 31 vs 41).
            detector.onnx_session = quiet_session(path, self.threads, arena=True)
            return detector
        except Exception as exc:
            raise ModelLoadError(
                f"could not load the NudeNet detector ({where}): {exc}. Install nudenet 3.x "
                "(its wheel carries the model), or set SCENERY_NSFW_NUDENET=false."
            ) from exc

    def _value(self, detections: list[Detection]) -> float:
        return float(top_exposed(detections, self.classes).get("score", 0.0))

    def score(self, image: Image.Image) -> tuple[float, list[Detection]]:
        """Score one image: the top exposed-class confidence (0.0 if none) and all detections."""
        detections: list[Detection] = self.load().detect(detector_input(image))
        return self._value(detections), detections

    def score_batch(self, images: Sequence[Image.Image]) -> list[tuple[float, list[Detection]]]:
        """Score several images with NudeNet's batched inference."""
        if not images:
            return []
        arrays = [detector_input(image) for image in images]
        found = self.load().detect_batch(arrays, batch_size=self.batch_size)
        return [(self._value(detections), detections) for detections in found]


class ClipNsfwScorer:
    """Zero-shot P(nsfw) from CLIP prompt ensembles, on image vectors already computed."""

    def __init__(
        self,
        embedder: Embedder,
        nsfw_prompts: Sequence[str] = NSFW_PROMPTS,
        sfw_prompts: Sequence[str] = SFW_PROMPTS,
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        if not nsfw_prompts or not sfw_prompts:
            raise ValueError("both prompt lists need at least one prompt")
        self.embedder = embedder
        self.nsfw_prompts = tuple(nsfw_prompts)
        self.sfw_prompts = tuple(sfw_prompts)
        self.logit_scale = logit_scale
        self._lock = threading.Lock()
        self._directions: np.ndarray | None = None

    def directions(self) -> np.ndarray:
        """Return the (2, dim) class directions [sfw, nsfw], encoding the prompts once."""
        with self._lock:
            if self._directions is None:
                texts = self.sfw_prompts + self.nsfw_prompts
                encoded = normalise(self.embedder.encode_text(list(texts)))
                sfw = encoded[: len(self.sfw_prompts)].mean(axis=0)
                nsfw = encoded[len(self.sfw_prompts) :].mean(axis=0)
                self._directions = normalise(np.stack([sfw, nsfw]))
            return self._directions

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """Return P(nsfw) for each row of L2-normalised image vectors."""
        similarities = np.atleast_2d(vectors).astype(np.float32) @ self.directions().T
        logits = self.logit_scale * similarities
        logits -= logits.max(axis=1, keepdims=True)  # softmax without overflow
        odds = np.exp(logits)
        return (odds[:, 1] / odds.sum(axis=1)).astype(np.float64)


@dataclass(frozen=True)
class _Signal:
    value: float
    threshold: float
    borderline: float
    label: str = ""

    @property
    def verdict(self) -> Verdict:
        if self.value >= self.threshold:
            return Verdict.FAIL
        if self.value >= self.borderline:
            return Verdict.BORDERLINE
        return Verdict.PASS


_SEVERITY = {Verdict.PASS: 0, Verdict.BORDERLINE: 1, Verdict.FAIL: 2}


class NsfwFilter:
    """Fails or queues a candidate that NudeNet or the CLIP prompt ensemble finds explicit."""

    name = "nsfw"

    def __init__(
        self,
        nudenet: NudeNetScorer | None = None,
        clip: ClipNsfwScorer | None = None,
        *,
        nudenet_threshold: float = 0.6,
        nudenet_borderline: float = 0.35,
        clip_threshold: float = 0.8,
        clip_borderline: float = 0.5,
        cache_size: int = 4096,
    ) -> None:
        if nudenet is None and clip is None:
            raise ValueError("NsfwFilter needs at least one of NudeNet and CLIP")
        self.nudenet = nudenet
        self.clip = clip
        self.nudenet_limits = (nudenet_threshold, nudenet_borderline)
        self.clip_limits = (clip_threshold, clip_borderline)
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, dict[str, _Signal]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder) -> NsfwFilter | None:
        """Build the filter the settings enable, or None when both signals are off."""
        nudenet = NudeNetScorer() if settings.nsfw_nudenet else None
        clip = ClipNsfwScorer(embedder) if settings.nsfw_clip else None
        if nudenet is None and clip is None:
            return None
        return cls(
            nudenet,
            clip,
            nudenet_threshold=settings.nsfw_nudenet_threshold,
            nudenet_borderline=settings.nsfw_nudenet_borderline,
            clip_threshold=settings.nsfw_clip_threshold,
            clip_borderline=settings.nsfw_clip_borderline,
        )

    def prepare(self, batch: Sequence[Facts]) -> None:
        """Score a whole batch at once (CLIP in one matrix product) and keep the results."""
        with self._lock:
            todo = {f.sha256: f for f in batch if f.sha256 not in self._cache}
        if not todo:
            return
        measured = self._measure(list(todo.values()))
        with self._lock:
            for sha256, signals in measured.items():
                self._cache[sha256] = signals
                self._cache.move_to_end(sha256)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _measure(self, batch: Sequence[Facts]) -> dict[str, dict[str, _Signal]]:
        out: dict[str, dict[str, _Signal]] = {f.sha256: {} for f in batch}
        if self.nudenet is not None:
            scored = self.nudenet.score_batch([f.image for f in batch])
            for facts, (value, detections) in zip(batch, scored, strict=True):
                label = top_exposed(detections, self.nudenet.classes).get("class", "")
                out[facts.sha256]["nudenet"] = _Signal(value, *self.nudenet_limits, label)
        if self.clip is not None:
            probabilities = self.clip.probability(np.stack([f.vector for f in batch]))
            for facts, p in zip(batch, probabilities, strict=True):
                out[facts.sha256]["clip"] = _Signal(float(p), *self.clip_limits)
        return out

    def _signals(self, facts: Facts) -> dict[str, _Signal]:
        with self._lock:
            cached = self._cache.get(facts.sha256)
        return cached if cached is not None else self._measure([facts])[facts.sha256]

    def signals(self, facts: Facts) -> dict[str, float]:
        """Return each enabled signal's score by name ("nudenet", "clip")."""
        return {name: s.value for name, s in self._signals(facts).items()}

    def check(self, facts: Facts) -> FilterResult:
        """Fail if any signal reaches its threshold, queue if any reaches its borderline."""
        signals = self._signals(facts)
        verdict = max((s.verdict for s in signals.values()), key=_SEVERITY.__getitem__)
        # The score is the strongest signal as a fraction of its own fail threshold:
        # 1.0 or more means some signal failed the image; signals stay comparable this way.
        score = max(s.value / max(s.threshold, 1e-6) for s in signals.values())
        reason = ", ".join(_describe(name, s) for name, s in signals.items())
        code = "ok" if verdict == Verdict.PASS else "nsfw"
        margins = [band_margin(s.value, s.borderline, s.threshold) for s in signals.values()]
        margin = min((m for m in margins if m is not None), default=None)
        return FilterResult(self.name, verdict, round(score, 4), reason, code, margin=margin)


def _describe(name: str, signal: _Signal) -> str:
    text = f"{name} {signal.value:.3f}"
    if signal.label:
        text += f" ({signal.label})"
    if signal.verdict == Verdict.FAIL:
        text += f" >= fail {signal.threshold:g}"
    elif signal.verdict == Verdict.BORDERLINE:
        text += f" >= borderline {signal.borderline:g}"
    return text
