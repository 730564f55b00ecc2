"""CLIP embedders: the ``Embedder`` protocol and its open_clip implementation.

torch and open_clip are imported inside functions so that the CLI and the web app start fast.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from scenery.config import Settings
from scenery.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TINY_TEST_MODEL = "tiny-test"
CONFIG_DIR = Path(__file__).parent / "clip_configs"
TINY_TEST_SEED = 20240601
RANDOM_WEIGHTS = frozenset({"", "none", "random"})  # for benchmarks: no weights at all
# What the model's own preprocessing may be given: open_clip resizes the short side to the
# input size, so a thin strip would be scaled up into a giant. The long side is cropped to this
# many times the short one around the centre (which is all its centre crop keeps), and an image
# whose short side is over twice the input size is scaled down to that first.
MODEL_VIEW_ASPECT = 20
MODEL_VIEW_SCALE = 2


@runtime_checkable
class Embedder(Protocol):
    """Maps images and text into one space; every row returned is L2-normalised float32."""

    @property
    def name(self) -> str:
        """Identifies the vector space: embeddings of different names never mix."""
        ...

    @property
    def dim(self) -> int: ...

    def load(self) -> None:
        """Load the model now, so that a model that cannot load fails before any work."""
        ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit length as float32 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def model_view(image: Image.Image, side: int) -> Image.Image:
    """An RGB view of ``image`` that a model of input ``side`` resizes at bounded cost: its
    long side at most ``MODEL_VIEW_ASPECT`` times its short one, which is at most
    ``MODEL_VIEW_SCALE`` x ``side`` (scaled down, never up)."""
    view = image.convert("RGB")
    width, height = view.size
    longest = max(1, min(width, height)) * MODEL_VIEW_ASPECT
    if width > longest:
        view = view.crop(((width - longest) // 2, 0, (width - longest) // 2 + longest, height))
    elif height > longest:
        view = view.crop((0, (height - longest) // 2, width, (height - longest) // 2 + longest))
    width, height = view.size
    bound = MODEL_VIEW_SCALE * side
    if min(width, height) > bound:
        scale = bound / min(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        view = view.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return view


def input_side(model: Any) -> int:
    """The square input size of an open_clip model's image tower (224 when it does not say)."""
    size = getattr(getattr(model, "visual", None), "image_size", 224)
    return int(max(size) if isinstance(size, tuple | list) else size)


def _register_builtin_configs() -> None:
    import open_clip

    for path in CONFIG_DIR.glob("*.json"):
        if path.stem not in open_clip.list_models():
            open_clip.add_model_config(path)


def _model_config(model: str) -> dict[str, Any] | None:
    """An open_clip model config: ours, or from open_clip's bundled JSON files (no import)."""
    spec = importlib.util.find_spec("open_clip")
    folders = [CONFIG_DIR]
    if spec and spec.submodule_search_locations:
        folders += [Path(p) / "model_configs" for p in spec.submodule_search_locations]
    for folder in folders:
        path = folder / f"{model}.json"
        if path.is_file():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
    import open_clip  # configs registered some other way

    _register_builtin_configs()
    return open_clip.get_model_config(model)  # type: ignore[no-any-return]


def _looks_like_path(pretrained: str) -> bool:
    return "/" in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))


def model_space_name(model: str, pretrained: str) -> str:
    """The name under which embeddings of this model and weights are stored."""
    if _looks_like_path(pretrained):
        return f"{model}/{Path(pretrained).name}"
    return TINY_TEST_MODEL if model == TINY_TEST_MODEL else f"{model}/{pretrained}"


class OpenClipEmbedder:
    """An open_clip model that loads on first use and encodes in batches."""

    def __init__(
        self,
        model: str,
        pretrained: str,
        device: str = "auto",
        batch_size: int = 32,
        threads: int | None = None,
        cache_dir: Path | None = None,
        short_context: bool = True,
    ) -> None:
        self.model_name = model
        self.pretrained = pretrained
        self.requested_device = device
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = cache_dir
        self.short_context = short_context
        self._short: bool | None = None  # whether encode_text runs the short context
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Any, str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenClipEmbedder:
        return cls(
            settings.clip_model,
            settings.clip_pretrained,
            device=settings.clip_device,
            batch_size=settings.clip_batch_size,
            threads=settings.clip_threads,
            cache_dir=settings.models_dir / "open_clip",
            short_context=settings.clip_short_context,
        )

    @property
    def name(self) -> str:
        return model_space_name(self.model_name, self.pretrained)

    @property
    def dim(self) -> int:
        """The embedding width, read from the model config without importing torch."""
        config = _model_config(self.model_name)
        if config is None:
            raise ModelLoadError(self._unknown_model_message())
        return int(config["embed_dim"])

    def _unknown_model_message(self) -> str:
        return (
            f"unknown CLIP model {self.model_name!r}; SCENERY_CLIP_MODEL takes an open_clip "
            f"model name such as ViT-B-32, or {TINY_TEST_MODEL} for tests"
        )

    def _load(self) -> tuple[Any, Any, Any, str]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._build()
            return self._loaded

    def _build(self) -> tuple[Any, Any, Any, str]:
        """Model, preprocessing, tokenizer and device."""
        # OpenMP threads that spin between batches starve the decoding threads beside them
        # (ingest measured 7.5 -> 9.5 images/s with ViT-B-32 on 2 cores); must precede import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import open_clip
        import torch

        _register_builtin_configs()
        if self.model_name not in open_clip.list_models():
            raise ModelLoadError(self._unknown_model_message())
        if self.threads:
            torch.set_num_threads(self.threads)
        device = self._resolve_device(torch)
        local = _looks_like_path(self.pretrained)
        if local and not Path(self.pretrained).expanduser().is_file():
            raise ModelLoadError(
                f"SCENERY_CLIP_PRETRAINED={self.pretrained} is not a file; point it at an "
                "open_clip checkpoint (.safetensors, .bin or .pt)"
            )
        pretrained: str | None = (
            str(Path(self.pretrained).expanduser()) if local else self.pretrained
        )
        if pretrained in RANDOM_WEIGHTS or (self.model_name == TINY_TEST_MODEL and not local):
            torch.manual_seed(TINY_TEST_SEED)  # random weights, the same in every process
            pretrained = None
        log.info("loading CLIP model %s (%s) on %s", self.model_name, pretrained, device)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_name,
                pretrained=pretrained,
                device=device,
                cache_dir=str(self.cache_dir) if self.cache_dir else None,
            )
        except Exception as exc:
            raise ModelLoadError(
                f"could not load CLIP weights {self.pretrained!r} for {self.model_name}: {exc}. "
                "Without internet access, download the open_clip checkpoint elsewhere and set "
                "SCENERY_CLIP_PRETRAINED=/path/to/open_clip_model.safetensors (or .bin/.pt); "
                f"for tests and offline development, SCENERY_CLIP_MODEL={TINY_TEST_MODEL}."
            ) from exc
        model.eval()
        tokenizer = open_clip.get_tokenizer(self.model_name)
        return model, preprocess, tokenizer, device

    def _resolve_device(self, torch: Any) -> str:
        if self.requested_device != "auto":
            return self.requested_device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def load(self) -> None:
        """Load the model now rather than on first use."""
        self._load()

    def canonical_text(self, text: str) -> str:
        """The text as the tokenizer sees it: open_clip's cleaning for CLIP's own tokenizer."""
        config = _model_config(self.model_name) or {}
        if config.get("text_cfg", {}).get("hf_tokenizer_name"):
            return " ".join(text.split())
        from scenery.clip_tokens import clean

        return clean(text)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        model, preprocess, _, device = self._load()
        side = input_side(model)
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            views = [preprocess(model_view(img, side)) for img in chunk]
            batch = torch.stack(views).to(device)
            out.append(self._run(lambda b=batch: model.encode_image(b)))
        return normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        from scenery.text_context import encode_text_short, short_context_supported

        model, _, tokenizer, device = self._load()
        if self._short is None:
            self._short = self.short_context and short_context_supported(model)
        encode = partial(encode_text_short, model) if self._short else model.encode_text
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = tokenizer(list(texts[start : start + self.batch_size])).to(device)
            out.append(self._run(lambda t=tokens: encode(t)))
        return normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    @staticmethod
    def _run(forward: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            features: torch.Tensor = forward()
        return features.float().cpu().numpy()


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for (not yet loaded): torch, or ONNX Runtime."""
    if settings.clip_runtime == "torch":
        return OpenClipEmbedder.from_settings(settings)
    from scenery.onnx_embed import OnnxClipEmbedder

    return OnnxClipEmbedder.from_settings(settings)
