"""Duplicate detection: exact (sha256), perceptual hash (also mirrored) and CLIP similarity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from scenery.curation.verdicts import Facts, FilterResult, Verdict, band_margin
from scenery.models import Image, ImageStatus

WORDS = 4  # a 256-bit hash as four uint64 words


def hash_words(hex_hash: str) -> np.ndarray:
    """A 64-hex-digit hash as four uint64 words."""
    return np.frombuffer(bytes.fromhex(hex_hash), dtype=">u8").astype(np.uint64)


@dataclass
class HashBank:
    """Perceptual hashes of the gallery's images, searchable by Hamming distance."""

    ids: list[int] = field(default_factory=list)
    words: np.ndarray = field(default_factory=lambda: np.zeros((0, WORDS), np.uint64))
    high: int = 0  # the highest image id loaded from the database

    @classmethod
    def load(cls, session: Session) -> HashBank:
        """Hashes of published and queued images (what a new candidate must not repeat)."""
        bank = cls()
        bank.catch_up(session)
        return bank

    def catch_up(self, session: Session) -> int:
        """Add the hashes of images stored since the last load (by other runs too); return
        how many. Ingest stores under one lock, so newer images have higher ids."""
        rows = session.execute(
            select(Image.id, Image.phash).where(
                Image.status.in_([ImageStatus.PUBLISHED, ImageStatus.QUEUED]),
                Image.id > self.high,
            )
        ).all()
        known = set(self.ids)
        fresh = [row for row in rows if row[0] not in known]
        if fresh:
            self.ids += [row[0] for row in fresh]
            self.words = np.vstack([self.words, np.stack([hash_words(r[1]) for r in fresh])])
        if rows:
            self.high = max(self.high, max(row[0] for row in rows))
        return len(fresh)

    def add(self, image_id: int, hex_hash: str) -> None:
        self.ids.append(image_id)
        self.words = np.vstack([self.words, hash_words(hex_hash)[None, :]])

    def remove(self, image_id: int) -> None:
        """Forget an image's hash (its decision was rolled back)."""
        keep = [i for i, stored in enumerate(self.ids) if stored != image_id]
        self.ids = [self.ids[i] for i in keep]
        self.words = self.words[keep]

    def nearest(self, *hex_hashes: str) -> tuple[int, int] | None:
        """The closest stored image to any of the hashes: (image id, Hamming distance)."""
        if not self.ids:
            return None
        best: tuple[int, int] | None = None
        for hex_hash in hex_hashes:
            distances = np.bitwise_count(self.words ^ hash_words(hex_hash)).sum(axis=1)
            i = int(distances.argmin())
            if best is None or int(distances[i]) < best[1]:
                best = (self.ids[i], int(distances[i]))
        return best


def exact_duplicate(image_id: int | None) -> FilterResult:
    """The verdict on a file whose bytes are stored as ``image_id``."""
    reason = f"same file as image {image_id}"
    return FilterResult("exact_duplicate", Verdict.FAIL, 1.0, reason, "duplicate_exact", image_id)


@dataclass
class ExactDuplicate:
    """Fails a candidate whose bytes are already stored."""

    lookup: Callable[[str], int | None]
    name: str = "exact_duplicate"

    def check(self, facts: Facts) -> FilterResult:
        match = self.lookup(facts.sha256)
        if match is not None:
            return exact_duplicate(match)
        return FilterResult(self.name, Verdict.PASS, 0.0, "new file", "ok")


@dataclass
class PerceptualDuplicate:
    """Fails a candidate whose 256-bit pHash, or its mirror's, is near a stored image's."""

    bank: HashBank
    max_distance: int
    name: str = "phash_duplicate"

    def check(self, facts: Facts) -> FilterResult:
        nearest = self.bank.nearest(facts.phash, facts.mirrored_phash)
        if nearest is None:
            return FilterResult(self.name, Verdict.PASS, None, "nothing to compare with", "ok")
        image_id, distance = nearest
        if distance <= self.max_distance:
            reason = f"looks like image {image_id} (pHash distance {distance} of 256)"
            return FilterResult(
                self.name, Verdict.FAIL, float(distance), reason, "duplicate_phash", image_id
            )
        reason = f"closest pHash distance {distance}"
        return FilterResult(self.name, Verdict.PASS, float(distance), reason, "ok", image_id)


@dataclass
class ClipDuplicate:
    """Fails (or queues) a candidate whose CLIP embedding is very close to a published image's."""

    nearest: Callable[[np.ndarray], tuple[int, float] | None]
    fail_at: float
    borderline_at: float
    name: str = "clip_duplicate"

    def check(self, facts: Facts) -> FilterResult:
        found = self.nearest(facts.vector)
        if found is None:
            return FilterResult(self.name, Verdict.PASS, None, "nothing to compare with", "ok")
        image_id, similarity = found
        detail = f"CLIP similarity {similarity:.3f} to image {image_id}"
        if similarity >= self.fail_at:
            return FilterResult(
                self.name,
                Verdict.FAIL,
                similarity,
                f"near-duplicate: {detail}",
                "duplicate_clip",
                image_id,
            )
        if similarity >= self.borderline_at:
            return FilterResult(
                self.name,
                Verdict.BORDERLINE,
                similarity,
                f"possible duplicate: {detail}",
                "possible_duplicate",
                image_id,
                band_margin(similarity, self.borderline_at, self.fail_at),
            )
        return FilterResult(self.name, Verdict.PASS, similarity, detail, "ok", image_id)
