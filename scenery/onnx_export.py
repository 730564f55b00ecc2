"""Export an open_clip model's towers to ONNX (run as ``python -m scenery.onnx_export``).

The text tower is exported with the batch and the sequence length dynamic (the short-context
encoding of ``scenery.text_context``), the image tower with the batch dynamic. Both are checked
against torch on the probe before the export is published: an fp32 export that disagrees by
more than ``AGREEMENT`` per component is refused. ``--variant int8`` adds dynamically quantised
graphs (onnxruntime's ``quantize_dynamic``) and records how far they are from fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from scenery.clip_preprocess import Preprocess, read_transform
from scenery.clip_tokens import ClipTokenizer, tokenizer_json
from scenery.embed import OpenClipEmbedder, normalise
from scenery.onnx_store import (
    AGREEMENT,
    EXPORT_FORMAT,
    OPSET,
    PROBE_TEXTS,
    file_digest,
    probe_images,
    read_manifest,
)
from scenery.text_context import encode_text_prefix, short_context_supported

PHOTO_CHECK_SIDE = (640, 427)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _tower(model: Any, forward: Any) -> Any:
    """``forward`` over ``model`` as a torch module (what the exporter traces); the model is
    a submodule, so its weights export as the graph's initializers."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return forward(x)  # type: ignore[no-any-return]

    return Tower()


def _text_tower(model: Any, short: bool) -> Any:
    """Tokens -> text features: the short context when the tower allows it."""
    return _tower(model, partial(encode_text_prefix, model) if short else model.encode_text)


def _export(module: Any, example: Any, path: Path, dynamic: dict[int, Any]) -> None:
    import torch

    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["features"],
        dynamic_shapes=({**dynamic},),
        opset_version=OPSET,
        dynamo=True,
        external_data=True,
        verbose=False,
    )


def export_fp32(folder: Path, model_name: str, pretrained: str, cache_dir: Path) -> None:
    """Export both towers into a new ``folder`` (written beside it, then renamed into place)."""
    import open_clip
    import torch
    from torch.export import Dim

    embedder = OpenClipEmbedder(model_name, pretrained, device="cpu", cache_dir=cache_dir)
    model, transform, tokenizer, _ = embedder._load()
    if not isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer):
        raise SystemExit(f"{model_name} uses a tokenizer the ONNX runtime does not reproduce")
    preprocess = read_transform(transform)
    if preprocess is None:
        raise SystemExit(f"{model_name}'s image preprocessing is not one the ONNX runtime runs")
    _check_preprocess(preprocess, transform)
    short = short_context_supported(model)
    context = int(model.context_length)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        vocabulary = Path(open_clip.tokenizer.default_bpe())
        (work / "tokenizer.json").write_text(tokenizer_json(vocabulary))
        ours = ClipTokenizer(work / "tokenizer.json", context)
        sample = torch.from_numpy(ours(["a photo of a lake and a long trail of words", "b"]))
        if not short:
            sample = torch.from_numpy(ours(["a", "b"], full_context=True))
        length = {1: Dim("length", min=2, max=context)} if short else {}
        with torch.inference_mode(False), torch.no_grad():
            _export(
                _text_tower(model, short),
                sample,
                work / "text.fp32.onnx",
                {0: Dim("batch"), **length},
            )
            pixels = torch.from_numpy(preprocess.batch(probe_images(preprocess.side)))
            _export(
                _tower(model, model.encode_image),
                pixels,
                work / "image.fp32.onnx",
                {0: Dim("batch")},
            )
            tokens = torch.from_numpy(ours(list(PROBE_TEXTS), full_context=True))
            reference = {
                "text": normalise(model.encode_text(tokens).numpy()),
                "image": normalise(model.encode_image(pixels).numpy()),
            }
        probe = _run_probe(work, "fp32", ours, preprocess, short)
        worst = max(float(np.abs(probe[t] - reference[t]).max()) for t in reference)
        if worst > AGREEMENT:
            raise SystemExit(f"the ONNX export differs from torch by {worst:.2g} (> {AGREEMENT})")
        manifest = {
            "format": EXPORT_FORMAT,
            "model": model_name,
            "pretrained": pretrained,
            "dim": int(reference["text"].shape[1]),
            "context_length": context,
            "short_context": short,
            "preprocess": preprocess.to_json(),
            "variants": {"fp32": {"probe": _listed(probe), "max_abs_vs_torch": worst}},
        }
        _write_manifest(work, manifest)
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_preprocess(preprocess: Preprocess, transform: Any) -> None:
    """Refuse to export when our preprocessing does not reproduce open_clip's exactly."""
    from PIL import Image

    rng = np.random.default_rng(7)
    picture = Image.fromarray(rng.integers(0, 256, (*PHOTO_CHECK_SIDE[::-1], 3), dtype=np.uint8))
    if float(np.abs(transform(picture).numpy() - preprocess.pixels(picture)).max()) > 1e-6:
        raise SystemExit("the ONNX runtime's image preprocessing does not match open_clip's")


def _run_probe(
    folder: Path, variant: str, tokenizer: ClipTokenizer, preprocess: Preprocess, short: bool
) -> dict[str, np.ndarray]:
    tokens = tokenizer(list(PROBE_TEXTS), full_context=not short)
    pixels = preprocess.batch(probe_images(preprocess.side))
    text = _session(folder / f"text.{variant}.onnx").run(None, {"input": tokens})[0]
    image = _session(folder / f"image.{variant}.onnx").run(None, {"input": pixels})[0]
    return {"text": normalise(text), "image": normalise(image)}


def _listed(probe: dict[str, np.ndarray]) -> dict[str, list[list[float]]]:
    return {tower: values.astype(float).tolist() for tower, values in probe.items()}


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Record every file's size, time and hash, then write the manifest atomically."""
    manifest["files"] = {
        path.name: {
            "bytes": path.stat().st_size,
            "mtime_ns": path.stat().st_mtime_ns,
            "sha256": file_digest(path),
        }
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != "manifest.json"
    }
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / "manifest.json")


def add_int8(folder: Path) -> None:
    """Quantise an fp32 export's graphs (weights to int8) and record their probe answers."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    manifest = read_manifest(folder, "fp32")
    if manifest is None:
        raise SystemExit(f"no fp32 export in {folder} to quantise")
    for tower in ("text", "image"):
        target = folder / f"{tower}.int8.onnx"
        tmp = target.with_name(f".{target.name}.tmp")
        quantize_dynamic(manifest.graph(tower, "fp32"), tmp, weight_type=QuantType.QInt8)
        os.replace(tmp, target)
    tokenizer = ClipTokenizer(folder / "tokenizer.json", manifest.context_length)
    probe = _run_probe(folder, "int8", tokenizer, manifest.preprocess, manifest.short_context)
    fp32 = {tower: np.asarray(values) for tower, values in manifest.probe("fp32").items()}
    cosine = min(float((probe[t] * fp32[t]).sum(axis=1).min()) for t in fp32)
    data = dict(manifest.data)
    data["variants"] = {**data["variants"], "int8": {"probe": _listed(probe), "cosine": cosine}}
    _write_manifest(folder, data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--variant", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--model", required=True)
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if read_manifest(args.folder, "fp32") is None:
        export_fp32(args.folder, args.model, args.pretrained, args.cache_dir)
    if args.variant == "int8" and read_manifest(args.folder, "int8") is None:
        add_int8(args.folder)


if __name__ == "__main__":
    main()
