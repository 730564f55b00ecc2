"""Training the watermark detector on the gallery's own images: the trusted references with
synthetic watermarks drawn over them, plus the admin's watermark rejections. One body for
``scenery train watermark`` and for the worker task the admin pages enqueue."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

from PIL import Image as PILImage
from sqlalchemy import select

from scenery.config import Settings
from scenery.context import Context
from scenery.curation.artifacts import Artifact
from scenery.curation.reference import TRUSTED
from scenery.curation.watermark import WatermarkTraining, save_watermark, train_watermark
from scenery.errors import CurationError, ImageRejected
from scenery.imaging import ImageLimits, decode
from scenery.models import Candidate, Image, ImageStatus

TRAINING_EDGE = 1024  # references are decoded this large before watermarks are drawn on them


@dataclass(frozen=True)
class Trained:
    training: WatermarkTraining
    artifact: Artifact
    references: int
    positives: int


def train_gallery_watermark(
    ctx: Context, *, limit: int = 1000, variants: int = 2, seed: int = 0
) -> Trained:
    """Train and save a watermark detector from the stored images."""
    with ctx.sessions() as session:
        trusted = session.execute(select(Image.sha256, Image.path).where(TRUSTED)).all()
        labelled = session.execute(
            select(Image.sha256, Image.path)
            .join(Candidate, Candidate.image_id == Image.id)
            .where(Image.status == ImageStatus.REJECTED, Candidate.review_reason == "watermark")
        ).all()
    trusted = list(trusted)
    random.Random(seed).shuffle(trusted)
    references = StoredImages(ctx.settings, trusted[:limit])
    positives = StoredImages(ctx.settings, list(labelled))
    if len(references) < 8:
        raise CurationError(f"{len(references)} reference images: the detector needs at least 8")
    training = train_watermark(
        ctx.embedder,
        references,
        seed=seed,
        extra_positives=positives,
        variants_per_image=variants,
        quadrants=ctx.quadrant_embedder,
    )
    artifact = save_watermark(ctx.settings, training)
    return Trained(training, artifact, len(references), len(positives))


class StoredImages(Sequence[PILImage.Image]):
    """Stored image files, decoded only when the trainer reads them (it reads a chunk at a
    time), so a thousand references do not sit in memory at once."""

    def __init__(self, settings: Settings, rows: list[Any]) -> None:
        self.limits = ImageLimits.from_settings(settings)
        # a rejected image's file may be gone after its retention period
        self.paths = [p for _sha, rel in rows if (p := settings.root / rel).is_file()]

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> PILImage.Image: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[PILImage.Image]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        path = self.paths[index]
        try:
            return decode(path.read_bytes(), self.limits, TRAINING_EDGE).image
        except ImageRejected as exc:
            raise CurationError(f"stored image {path} cannot be read: {exc.reason}") from exc
