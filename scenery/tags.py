"""Auto tags: a vocabulary of landscape subjects scored by CLIP zero-shot against each image.

The vocabulary is a text file (``SCENERY_TAG_VOCABULARY``; when unset, the packaged
``scenery/tag_vocabulary.txt``): one tag per line, ``name`` or ``name = prompt; prompt``,
``#`` comments. Each tag's prompts are embedded once per process (their mean, normalised); an
image's tags are those whose zero-shot probability (softmax over the vocabulary of
``LOGIT_SCALE`` x cosine) reaches ``SCENERY_TAG_MIN_PROBABILITY``, at most ``MAX_TAGS``, each
stored with that probability. Tagging needs only the image's embedding, so ``scenery retag``
re-tags a gallery without opening a single file.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenery.embed import Embedder, normalise
from scenery.errors import SceneryError
from scenery.models import ImageTag

DEFAULT_VOCABULARY = Path(__file__).parent / "tag_vocabulary.txt"
LOGIT_SCALE = 100.0  # CLIP's learned temperature for zero-shot classification
MAX_TAGS = 5
MAX_NAME = 48
NAME = re.compile(r"[^\x00-\x1f=#;]{1,48}")


class VocabularyError(SceneryError):
    """A vocabulary file that cannot be used; the message names the line."""


@dataclass(frozen=True)
class Vocabulary:
    """Tag names and, for each, the prompts that describe it."""

    names: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]


def read_vocabulary(path: Path) -> Vocabulary:
    """Parse a vocabulary file (names are kept as written, lower-cased, spaces collapsed)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"cannot read the tag vocabulary {path}: {exc}") from exc
    names: list[str] = []
    prompts: list[tuple[str, ...]] = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, described = line.partition("=")
        name = " ".join(name.split()).lower()
        if NAME.fullmatch(name) is None:
            raise VocabularyError(f"{path}:{number}: a tag name of 1 to {MAX_NAME} characters")
        if name in names:
            raise VocabularyError(f"{path}:{number}: tag {name!r} is listed twice")
        said = tuple(p.strip() for p in described.split(";") if p.strip())
        names.append(name)
        prompts.append(said or (f"a photo of a {name}",))
    if not names:
        raise VocabularyError(f"{path}: no tags")
    return Vocabulary(tuple(names), tuple(prompts))


class Tagger:
    """Scores images against a vocabulary with one embedder; the prompts are embedded on first
    use (and again when the file changes)."""

    def __init__(self, embedder: Embedder, path: Path, min_probability: float) -> None:
        self.embedder = embedder
        self.path = path
        self.min_probability = min_probability
        self._lock = threading.Lock()
        self._parsed: tuple[float, Vocabulary] | None = None  # by the file's mtime
        self._embedded: tuple[float, np.ndarray] | None = None

    def names(self) -> tuple[str, ...]:
        """The tag names of the vocabulary as the file says now (no model needed; the file is
        read again only when it changed)."""
        return self._read()[1].names

    def _read(self) -> tuple[float, Vocabulary]:
        try:
            stamp = self.path.stat().st_mtime
        except OSError as exc:
            raise VocabularyError(f"cannot read the tag vocabulary {self.path}: {exc}") from exc
        with self._lock:
            if self._parsed is None or self._parsed[0] != stamp:
                self._parsed = (stamp, read_vocabulary(self.path))
            return self._parsed

    def vocabulary(self) -> tuple[Vocabulary, np.ndarray]:
        """The vocabulary and its tag embeddings (tags x dim), embedded again when the file
        changed."""
        stamp, vocabulary = self._read()
        with self._lock:
            if self._embedded is None or self._embedded[0] != stamp:
                flat = [p for prompts in vocabulary.prompts for p in prompts]
                encoded = self.embedder.encode_text(flat)
                rows, start = [], 0
                for prompts in vocabulary.prompts:
                    rows.append(encoded[start : start + len(prompts)].mean(axis=0))
                    start += len(prompts)
                self._embedded = (stamp, normalise(np.stack(rows)))
            return vocabulary, self._embedded[1]

    def tags(self, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
        """Each image's tags and probabilities, most likely first."""
        vocabulary, embedded = self.vocabulary()
        vectors = np.asarray(vectors, np.float32).reshape(-1, embedded.shape[1])
        logits = LOGIT_SCALE * (vectors @ embedded.T)
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        probability = odds / odds.sum(axis=1, keepdims=True)
        out = []
        for row in probability:
            order = np.argsort(-row, kind="stable")[:MAX_TAGS]
            out.append(
                [
                    (vocabulary.names[i], round(float(row[i]), 4))
                    for i in order
                    if row[i] >= self.min_probability
                ]
            )
        return out


def tag_names(tags: Sequence[ImageTag]) -> list[str]:
    """Names of an image's stored tags, most likely first."""
    return [t.tag for t in sorted(tags, key=lambda t: (-t.score, t.tag))]
