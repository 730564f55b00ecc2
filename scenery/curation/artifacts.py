"""Versioned model artifacts under the data dir: one folder per fit, the newest one in use.

A fit writes ``<models_dir>/curation/<kind>/<version>/`` with ``model.joblib`` (the fitted
objects) and ``meta.json`` (what people and the admin pages read), into a temporary folder that
is renamed only when complete, so a crash never leaves a half-written model in use.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from scenery.config import Settings

MODEL_FILE = "model.joblib"
META_FILE = "meta.json"


@dataclass(frozen=True)
class Artifact:
    """One saved fit: its folder, its fitted objects and its metadata."""

    path: Path
    objects: dict[str, Any]
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        return self.path.name


def kind_dir(settings: Settings, kind: str) -> Path:
    """Where the fits of one kind of model live (``gmm``, ``watermark``)."""
    return settings.models_dir / "curation" / kind


def save_artifact(
    settings: Settings, kind: str, objects: dict[str, Any], meta: dict[str, Any]
) -> Artifact:
    """Write a new version of a model atomically and return it."""
    root = kind_dir(settings, kind)
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    version = now.strftime("%Y%m%dT%H%M%S%fZ")
    meta = {"kind": kind, "version": version, "created_at": now.isoformat(), **meta}
    staging = root / f".{version}.tmp"
    staging.mkdir()
    try:
        joblib.dump(objects, staging / MODEL_FILE)
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable))
        final = root / version
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Artifact(final, objects, meta)


def versions(settings: Settings, kind: str) -> list[Path]:
    """Complete fits of one kind, oldest first."""
    root = kind_dir(settings, kind)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _complete(p)
    )


def latest_meta(settings: Settings, kind: str) -> dict[str, Any] | None:
    """The newest fit's metadata, without loading the model."""
    found = versions(settings, kind)
    return json.loads((found[-1] / META_FILE).read_text()) if found else None


def load_latest(settings: Settings, kind: str) -> Artifact | None:
    """The newest complete fit of one kind, or None when there is none yet."""
    found = versions(settings, kind)
    if not found:
        return None
    path = found[-1]
    return Artifact(
        path, joblib.load(path / MODEL_FILE), json.loads((path / META_FILE).read_text())
    )


def _complete(path: Path) -> bool:
    return (path / MODEL_FILE).is_file() and (path / META_FILE).is_file()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
