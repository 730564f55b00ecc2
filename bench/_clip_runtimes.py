"""The CLIP runtimes the benchmarks compare, and the ONNX exports they share across runs.

An export of ViT-B-32 takes a minute or two (int8 another), so the benchmarks keep theirs in
one folder (``--models-dir``, by default under the system temp dir) and make it before any
timing starts: the time an export took is printed, never counted in a throughput.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Literal, cast

from scenery.embed import Embedder, OpenClipEmbedder
from scenery.onnx_embed import OnnxClipEmbedder
from scenery.onnx_store import export_command, obtain, read_manifest

Runtime = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
PRETRAINED = "none"  # random weights: no download, and the speed is the same
DEFAULT_MODELS_DIR = Path(tempfile.gettempdir()) / "scenery-bench-models"


def add_models_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help=f"where ONNX exports are kept between runs (default {DEFAULT_MODELS_DIR})",
    )


def as_runtime(name: str) -> Runtime:
    """``name`` as the ``clip_runtime`` setting takes it."""
    if name not in RUNTIMES:
        raise SystemExit(f"unknown runtime {name!r}; one of {', '.join(RUNTIMES)}")
    return cast(Runtime, name)


def make_embedder(
    runtime: str,
    model: str,
    models_dir: Path,
    batch_size: int = 32,
    threads: int | None = None,
    short_context: bool = True,
) -> Embedder:
    """A new, unloaded embedder of ``model`` (random weights) on ``runtime``."""
    if runtime == "torch":
        return OpenClipEmbedder(
            model,
            PRETRAINED,
            device="cpu",
            batch_size=batch_size,
            threads=threads,
            cache_dir=models_dir / "open_clip",
            short_context=short_context,
        )
    return OnnxClipEmbedder(
        model,
        PRETRAINED,
        models_dir,
        int8=as_runtime(runtime) == "onnx-int8",
        batch_size=batch_size,
        threads=threads,
        short_context=short_context,
    )


def ensure_exports(model: str, runtimes: list[str], models_dir: Path) -> str:
    """Make the ONNX exports ``runtimes`` need (fp32, then int8); a line saying what was done."""
    variants = [v for r, v in (("onnx", "fp32"), ("onnx-int8", "int8")) if r in runtimes]
    if "int8" in variants and "fp32" not in variants:
        variants.insert(0, "fp32")  # int8 is quantised from the fp32 export
    if not variants:
        return "ONNX export: none needed (torch only)"
    folder = OnnxClipEmbedder(model, PRETRAINED, models_dir).folder
    made = []
    for variant in variants:
        if read_manifest(folder, variant) is not None:
            continue
        command = export_command(folder, variant, model, PRETRAINED, models_dir / "open_clip")
        started = time.perf_counter()
        obtain(folder, variant, command)
        made.append(f"{variant} {time.perf_counter() - started:.1f} s")
    if not made:
        return f"ONNX export: reused {folder} ({' + '.join(variants)})"
    return f"ONNX export: made now in {folder}: {', '.join(made)} (not counted in any figure)"


def runtime_label(runtime: str, model: str, dim: int) -> str:
    """How a benchmark's block header names the model (torch keeps its old header)."""
    return f"{model} ({dim}-d)" if runtime == "torch" else f"{model} ({dim}-d, {runtime})"
