"""CLIP on ONNX Runtime: the ``Embedder`` of ``SCENERY_CLIP_RUNTIME=onnx`` and ``onnx-int8``.

Nothing here imports torch: the export (``scenery.onnx_store``) runs in a child process, text
is tokenized by ``scenery.clip_tokens`` and images are prepared by ``scenery.clip_preprocess``.
Every load runs the export's probe and compares the answers with the ones recorded at export
(within ``AGREEMENT``), so a damaged export is noticed and made again. fp32 embeddings agree with
torch and share its vector space name; int8 embeddings do not, and get their own name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scenery.clip_tokens import ClipTokenizer, clean
from scenery.config import Settings
from scenery.embed import (
    _looks_like_path,
    _model_config,
    model_space_name,
    model_view,
    normalise,
)
from scenery.errors import ModelLoadError
from scenery.onnx_sessions import quiet_session
from scenery.onnx_store import (
    AGREEMENT,
    PROBE_TEXTS,
    Manifest,
    export_command,
    export_folder,
    obtain,
    probe_images,
    weights_identity,
)
from scenery.vector_space import INT8_SUFFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Loaded:
    manifest: Manifest
    text: Any  # None when only the image tower was asked for
    image: Any
    tokenizer: ClipTokenizer


class OnnxClipEmbedder:
    """An exported open_clip model run by ONNX Runtime on the CPU."""

    def __init__(
        self,
        model: str,
        pretrained: str,
        models_dir: Path,
        int8: bool = False,
        batch_size: int = 32,
        threads: int | None = None,
        short_context: bool = True,
        onnx_dir: Path | None = None,
        towers: tuple[str, ...] = ("text", "image"),
    ) -> None:
        self.model_name = model
        self.pretrained = pretrained
        self.models_dir = models_dir  # downloaded weights go to its open_clip/ folder
        self.onnx_dir = onnx_dir or models_dir / "onnx"
        self.variant = "int8" if int8 else "fp32"
        self.batch_size = batch_size
        self.threads = threads
        self.short_context = short_context
        self.towers = towers  # ("image",): the text graph is never opened (less memory)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        int8: bool | None = None,
        towers: tuple[str, ...] = ("text", "image"),
    ) -> OnnxClipEmbedder:
        """The model the settings name (``int8``: that variant whatever the runtime says)."""
        return cls(
            settings.clip_model,
            settings.clip_pretrained,
            settings.models_dir,
            int8=settings.clip_runtime == "onnx-int8" if int8 is None else int8,
            batch_size=settings.clip_batch_size,
            threads=settings.clip_threads,
            short_context=settings.clip_short_context,
            onnx_dir=settings.onnx_exports_dir,
            towers=towers,
        )

    @property
    def name(self) -> str:
        base = model_space_name(self.model_name, self.pretrained)
        return base + INT8_SUFFIX if self.variant == "int8" else base

    @property
    def dim(self) -> int:
        config = _model_config(self.model_name)
        if config is None:
            raise ModelLoadError(f"unknown CLIP model {self.model_name!r}")
        return int(config["embed_dim"])

    @cached_property
    def folder(self) -> Path:
        """The export of these weights as they are when first asked (at load, normally)."""
        weights = weights_identity(self.pretrained, _looks_like_path(self.pretrained))
        return export_folder(self.onnx_dir, self.model_name, weights)

    def load(self) -> None:
        """Export if needed, open both graphs and check they answer the probe as recorded."""
        self._load()

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._open()
            return self._loaded

    def _open(self) -> _Loaded:
        command = export_command(
            self.folder,
            self.variant,
            self.model_name,
            self.pretrained,
            self.models_dir / "open_clip",
        )
        manifest = obtain(self.folder, self.variant, command)
        loaded, error = self._sessions(manifest)
        if error:
            manifest = obtain(self.folder, self.variant, command, rebuild=True, reason=error)
            loaded, error = self._sessions(manifest)
            if error:
                raise ModelLoadError(f"the ONNX export at {self.folder} is unusable: {error}")
        assert loaded is not None
        return loaded

    def _sessions(self, manifest: Manifest) -> tuple[_Loaded | None, str]:
        """Open the graphs and run the probe: the loaded model, or why it cannot be used."""
        # Threads that spin between runs starve the request and decoding threads beside them
        # on a small machine (as OMP_WAIT_POLICY=PASSIVE does for torch); no arena kept at its
        # peak (a batch of 32): measured 30 MB less, no slower.
        try:
            text, image = (
                quiet_session(str(manifest.graph(tower, self.variant)), self.threads)
                if tower in self.towers
                else None
                for tower in ("text", "image")
            )
            tokenizer = ClipTokenizer(manifest.folder / "tokenizer.json", manifest.context_length)
        except Exception as exc:  # onnxruntime raises its own types for unreadable graphs
            return None, f"cannot load it ({exc})"
        loaded = _Loaded(manifest, text, image, tokenizer)
        answers = {}
        if text is not None:
            answers["text"] = self._text(loaded, list(PROBE_TEXTS))
        if image is not None:
            side = manifest.preprocess.side
            answers["image"] = self._images(loaded, probe_images(side), raw=True)
        for tower, expected in manifest.probe(self.variant).items():
            if tower not in answers:
                continue
            worst = float(np.abs(answers[tower] - np.asarray(expected, np.float32)).max())
            if worst > AGREEMENT:
                return None, f"its {tower} graph answers the probe off by {worst:.2g}"
        log.info("ONNX %s CLIP model %s ready (%s)", self.variant, self.name, manifest.folder)
        return loaded, ""

    def canonical_text(self, text: str) -> str:
        """The text as the tokenizer sees it (open_clip's cleaning)."""
        return clean(text)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._images(self._load(), images)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        loaded = self._load()
        if loaded.text is None:
            raise ModelLoadError(f"{self.name} was opened for images only")
        return self._text(loaded, texts)

    def _images(
        self, loaded: _Loaded, images: Sequence[Image.Image], raw: bool = False
    ) -> np.ndarray:
        preprocess = loaded.manifest.preprocess
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            views = chunk if raw else [model_view(img, preprocess.side) for img in chunk]
            out.append(loaded.image.run(None, {"input": preprocess.batch(views)})[0])
        return normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def _text(self, loaded: _Loaded, texts: Sequence[str]) -> np.ndarray:
        full = not (self.short_context and loaded.manifest.short_context)
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = loaded.tokenizer(list(texts[start : start + self.batch_size]), full)
            out.append(loaded.text.run(None, {"input": tokens})[0])
        return normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)
