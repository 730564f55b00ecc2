"""CLIP on ONNX Runtime (scenery.onnx_embed, scenery.onnx_store, scenery.onnx_export).

One export of the tiny model is made per test session and copied into each test's data dir;
the tests that need a new export (changed weights, damage found by the probe) make their own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenery.config import Settings
from scenery.context import Context
from scenery.embed import OpenClipEmbedder
from scenery.errors import ModelLoadError
from scenery.importer import Importer
from scenery.onnx_embed import OnnxClipEmbedder
from scenery.onnx_store import AGREEMENT, read_manifest
from tests.conftest import REPO
from web import create_app

QUERIES = ["a", "misty lake at dawn", "word " * 100, "x <end_of_text> y", "Ünïcode 東京 🌄"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding the tiny model's fp32 and int8 exports, made once."""
    models = tmp_path_factory.mktemp("onnx-models")
    OnnxClipEmbedder("tiny-test", "none", models, int8=True).load()
    return models


def _models_dir(exported: Path, tmp_path: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(exported, models)  # copy2 keeps modification times
    return models


def _photos(photos: list[Path]) -> list[Image.Image]:
    return [Image.open(p) for p in photos[:4]]


def test_fp32_agrees_with_torch_and_shares_its_vector_space(
    exported: Path, tmp_path: Path, tiny_embedder: OpenClipEmbedder, photos: list[Path]
) -> None:
    onnx = OnnxClipEmbedder("tiny-test", "none", _models_dir(exported, tmp_path), batch_size=3)
    assert onnx.name == tiny_embedder.name and onnx.dim == tiny_embedder.dim
    assert np.abs(onnx.encode_text(QUERIES) - tiny_embedder.encode_text(QUERIES)).max() < AGREEMENT
    for query in QUERIES:  # alone as in a batch
        alone = onnx.encode_text([query]) - tiny_embedder.encode_text([query])
        assert np.abs(alone).max() < AGREEMENT
    images = _photos(photos)
    diff = onnx.encode_images(images) - tiny_embedder.encode_images(images)
    assert np.abs(diff).max() < AGREEMENT


def test_int8_is_its_own_vector_space_and_close_to_fp32(
    exported: Path, tmp_path: Path, photos: list[Path]
) -> None:
    models = _models_dir(exported, tmp_path)
    fp32 = OnnxClipEmbedder("tiny-test", "none", models)
    int8 = OnnxClipEmbedder("tiny-test", "none", models, int8=True)
    assert int8.name == fp32.name + "+int8"
    images = _photos(photos)
    cosine = (int8.encode_images(images) * fp32.encode_images(images)).sum(axis=1)
    assert cosine.min() > 0.99
    manifest = read_manifest(fp32.folder, "int8")
    assert manifest is not None and manifest.data["variants"]["int8"]["cosine"] > 0.99


def test_an_export_is_reused_not_made_again(
    exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = _models_dir(exported, tmp_path)
    embedder = OnnxClipEmbedder("tiny-test", "none", models)
    before = {p.name: p.stat().st_mtime_ns for p in embedder.folder.iterdir()}
    with caplog.at_level(logging.INFO, logger="scenery.onnx_store"):
        embedder.load()
        OnnxClipEmbedder("tiny-test", "none", models).load()
    assert "exporting" not in caplog.text
    assert caplog.text.count("using the ONNX export") == 2
    assert {p.name: p.stat().st_mtime_ns for p in embedder.folder.iterdir()} == before


def test_changed_weights_get_a_new_export(tmp_path: Path) -> None:
    checkpoint = tmp_path / "tiny.pt"
    torch_model = OpenClipEmbedder("tiny-test", "none")._load()[0]
    torch.save(torch_model.state_dict(), checkpoint)
    models = tmp_path / "models"
    first = OnnxClipEmbedder("tiny-test", str(checkpoint), models)
    before = first.encode_text(["red"])
    state = {
        k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in torch_model.state_dict().items()
    }
    torch.save(state, checkpoint)
    os.utime(checkpoint, ns=(1, 2_000_000_000))  # a new modification time, as a copy gives
    second = OnnxClipEmbedder("tiny-test", str(checkpoint), models)
    assert second.folder != first.folder
    after = second.encode_text(["red"])
    reference = OpenClipEmbedder("tiny-test", str(checkpoint)).encode_text(["red"])
    assert np.abs(after - reference).max() < AGREEMENT
    assert np.abs(after - before).max() > 0.01


def test_a_truncated_export_file_is_not_trusted(exported: Path, tmp_path: Path) -> None:
    models = _models_dir(exported, tmp_path)
    folder = OnnxClipEmbedder("tiny-test", "none", models).folder
    assert read_manifest(folder, "fp32") is not None
    data = folder / "image.fp32.onnx.data"
    with data.open("r+b") as handle:
        handle.truncate(data.stat().st_size // 2)
    assert read_manifest(folder, "fp32") is None


def _damage(path: Path, keep_time: bool) -> bytes:
    """Overwrite 4 KiB in the middle of a file, keeping its size (and, if asked, its time)."""
    stat = path.stat()
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 4096] = bytes(b ^ 0xFF for b in content[middle : middle + 4096])
    path.write_bytes(bytes(content))
    if keep_time:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return bytes(content)


@pytest.mark.parametrize(
    ("damaged", "keep_time"),
    [("image.fp32.onnx.data", True), ("text.fp32.onnx", False)],
)
def test_a_damaged_export_is_rebuilt_with_a_warning(
    exported: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    tiny_embedder: OpenClipEmbedder,
    photos: list[Path],
    damaged: str,
    keep_time: bool,
) -> None:
    """Same size and time: the probe notices; a changed time: the file's hash does."""
    models = _models_dir(exported, tmp_path)
    path = OnnxClipEmbedder("tiny-test", "none", models).folder / damaged
    damaged_bytes = _damage(path, keep_time)
    with caplog.at_level(logging.WARNING, logger="scenery.onnx_store"):
        embedder = OnnxClipEmbedder("tiny-test", "none", models)
        text = embedder.encode_text(QUERIES)
        images = embedder.encode_images(_photos(photos))
    assert "damaged" in caplog.text and "exporting" in caplog.text
    assert np.abs(text - tiny_embedder.encode_text(QUERIES)).max() < AGREEMENT
    assert np.abs(images - tiny_embedder.encode_images(_photos(photos))).max() < AGREEMENT
    assert path.read_bytes() != damaged_bytes


def test_an_unknown_model_fails_with_a_clear_message(tmp_path: Path) -> None:
    embedder = OnnxClipEmbedder("no-such-model", "none", tmp_path / "models")
    with pytest.raises(ModelLoadError, match=r"ONNX export failed.*no-such-model"):
        embedder.load()


def test_a_web_process_on_onnx_never_imports_torch(
    exported: Path, tmp_path: Path, photos: list[Path]
) -> None:
    """Text search, search by image and similar images through the app, in a fresh process."""
    models = _models_dir(exported, tmp_path / "data")
    script = textwrap.dedent(
        f"""
        import io, json, sys
        from pathlib import Path
        from scenery.config import Settings
        from scenery.context import Context
        from scenery.importer import Importer
        from web import create_app
        settings = Settings(data_dir={str(tmp_path / "data")!r}, clip_model="tiny-test",
                            clip_pretrained="none", clip_runtime="onnx", warm_up=False,
                            index_refresh_seconds=0)
        ctx = Context(settings)
        ctx.migrate()
        Importer(ctx).run([Path(p) for p in {[str(p) for p in photos[:5]]!r}])
        client = create_app(settings).test_client()
        search = client.get("/api/search?q=mountain&k=3").get_json()["results"]
        similar = client.get(f"/api/images/{{search[0]['id']}}/similar?k=2").status_code
        with open({str(photos[1])!r}, "rb") as f:
            upload = client.post("/api/search/image",
                                 data={{"image": (io.BytesIO(f.read()), "q.jpg")}})
        print(json.dumps({{"hits": len(search), "similar": similar,
                          "upload": upload.status_code, "torch": "torch" in sys.modules}}))
        """
    )
    assert models.exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"hits": 3, "similar": 200, "upload": 200, "torch": False}


def test_a_gallery_embedded_in_fp32_refuses_int8_with_a_clear_message(
    exported: Path, tmp_path: Path, photos: list[Path]
) -> None:
    data = tmp_path / "data"
    _models_dir(exported, data)
    base = {"data_dir": data, "clip_model": "tiny-test", "clip_pretrained": "none"}
    fp32 = Settings(**base, clip_runtime="onnx", warm_up=False)  # type: ignore[arg-type]
    ctx = Context(fp32)
    ctx.migrate()
    Importer(ctx).run(photos[:3])
    ctx.close()
    int8 = Context(Settings(**base, clip_runtime="onnx-int8", warm_up=False))  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match=r"3 embeddings were made with .*torch or onnx"):
        int8.index  # noqa: B018
    client = create_app(int8.settings).test_client()
    response = client.get("/api/search?q=lake")
    assert response.status_code == 503
    assert "SCENERY_CLIP_RUNTIME back to torch or onnx" in response.get_data(as_text=True)
    int8.close()
    # the fp32 runtime still opens the gallery, and torch shares its space
    again = Context(fp32)
    assert len(again.index) == 3
    again.close()
