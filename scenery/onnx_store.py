"""Where ONNX exports of CLIP models live, what their manifest says, and how one is obtained.

An export is a folder under ``SCENERY_ONNX_DIR`` (default ``<data dir>/models/onnx/``), named
by the model and a hash of what the weights are (a named release, a local file's path, size
and modification time, or random weights) and of the export format, so a changed model or
checkpoint gets a new export. It holds ``text.fp32.onnx`` and ``image.fp32.onnx`` (weights
beside them in ``*.onnx.data``, memory-mapped by ONNX Runtime), their int8 variants when asked
for, ``tokenizer.json`` and ``manifest.json``. The export runs in a child process
(``python -m scenery.onnx_export``) under a file lock, so workers starting together export
once and the process asking never imports torch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scenery.clip_preprocess import Preprocess
from scenery.errors import ModelLoadError

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the graphs or the manifest change shape
OPSET = 18
AGREEMENT = 1e-4  # an fp32 export must match torch within this, per embedding component
VARIANTS = ("fp32", "int8")
# The probe: inputs whose outputs the export records, checked again every time it is loaded.
PROBE_TEXTS = ("a photo of a mountain lake at dawn", "snow", " ".join(["long"] * 90))
PROBE_IMAGES = 2


@dataclass(frozen=True)
class Manifest:
    """What an export holds and what its graphs must answer to the probe."""

    folder: Path
    data: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.data["dim"])

    @property
    def context_length(self) -> int:
        return int(self.data["context_length"])

    @property
    def short_context(self) -> bool:
        """Whether the text graph takes any sequence length (else exactly the full context)."""
        return bool(self.data["short_context"])

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.from_json(self.data["preprocess"])

    def graph(self, tower: str, variant: str) -> Path:
        return self.folder / f"{tower}.{variant}.onnx"

    def probe(self, variant: str) -> dict[str, list[list[float]]]:
        return self.data["variants"][variant]["probe"]  # type: ignore[no-any-return]

    def has(self, variant: str) -> bool:
        return variant in self.data.get("variants", {})


def weights_identity(pretrained: str, looks_like_path: bool) -> str:
    """What names the weights: a release tag, or a local file as it is now."""
    if not looks_like_path:
        return pretrained or "random"
    path = Path(pretrained).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError:
        return str(path)
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def export_folder(onnx_dir: Path, model: str, weights: str) -> Path:
    """The folder under ``onnx_dir`` of the export of ``model`` with these weights, in this
    export format."""
    key = json.dumps({"model": model, "weights": weights, "format": EXPORT_FORMAT, "opset": OPSET})
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return onnx_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}-{digest}"


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_manifest(folder: Path, variant: str) -> Manifest | None:
    """The export's manifest if every file it lists is there as written; else None."""
    try:
        data = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if data.get("format") != EXPORT_FORMAT or variant not in data.get("variants", {}):
        return None
    for name, expected in data.get("files", {}).items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            return None
        if stat.st_size != expected["bytes"]:
            return None
        # A file changed in place since the export is hashed again (its size may agree).
        if stat.st_mtime_ns != expected["mtime_ns"] and file_digest(path) != expected["sha256"]:
            return None
    return Manifest(folder, data)


@contextmanager
def export_lock(folder: Path) -> Iterator[None]:
    """Hold the export's lock file (several processes may start at once)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def obtain(
    folder: Path,
    variant: str,
    command: list[str],
    rebuild: bool = False,
    reason: str = "",
) -> Manifest:
    """The export in ``folder`` with ``variant``: read, or made by ``command`` (a child process).

    ``rebuild`` discards what is there first (it answered its probe wrongly: ``reason``)."""
    with export_lock(folder):
        if rebuild and folder.exists():
            log.warning("ONNX export at %s is damaged (%s); exporting it again", folder, reason)
            shutil.rmtree(folder)
        manifest = read_manifest(folder, variant)
        if manifest is not None:
            log.info("using the ONNX export at %s", folder)
            return manifest
        if folder.exists() and read_manifest(folder, "fp32") is None:
            log.warning("ONNX export at %s is damaged or incomplete; exporting again", folder)
            shutil.rmtree(folder)
        log.info("exporting the CLIP model to ONNX (%s) into %s", variant, folder)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            reason = tail[0].removeprefix("scenery.errors.ModelLoadError: ")
            raise ModelLoadError(f"ONNX export failed: {reason}")
        manifest = read_manifest(folder, variant)
        if manifest is None:
            raise ModelLoadError(f"ONNX export wrote no usable {variant} export into {folder}")
        return manifest


def export_command(
    folder: Path, variant: str, model: str, pretrained: str, cache_dir: Path
) -> list[str]:
    """The child process that exports (and, for int8, quantises) into ``folder``."""
    return [
        sys.executable,
        "-m",
        "scenery.onnx_export",
        "--folder",
        str(folder),
        "--variant",
        variant,
        "--model",
        model,
        "--pretrained",
        pretrained,
        "--cache-dir",
        str(cache_dir),
    ]


def probe_images(side: int) -> list[Image.Image]:
    """Deterministic test pictures: a gradient and seeded noise (no files needed)."""
    rng = np.random.default_rng(20261202)
    gradient = np.linspace(0, 255, side * side * 3).reshape(side, side, 3).astype(np.uint8)
    noise = rng.integers(0, 256, (side + 37, side + 91, 3), dtype=np.uint8)
    return [Image.fromarray(gradient), Image.fromarray(noise)][:PROBE_IMAGES]
