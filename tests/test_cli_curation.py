"""``scenery fit``, ``train watermark``, ``explain`` and ``evaluate`` through click's runner."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from scenery.cli import main
from scenery.config import Settings
from tests import badfiles

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Run:
    env = {
        "SCENERY_DATA_DIR": str(settings.data_dir),
        "SCENERY_DATABASE_URL": settings.db_url,
        "SCENERY_CLIP_MODEL": "tiny-test",
        # random tiny-model weights put distinct photos close: only near-identical vectors match
        "SCENERY_CLIP_DUPLICATE_SIMILARITY": "0.9999",
        "SCENERY_CLIP_DUPLICATE_BORDERLINE": "0.9998",
        "SCENERY_GMM_MIN_REFERENCE": "10",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def counts(output: str, row: str) -> list[str]:
    """The cells of one row of a printed table."""
    line = next(line for line in output.splitlines() if line.strip("│┃ ").startswith(row))
    return [cell.strip() for cell in re.split(r"[│┃]", line) if cell.strip()][1:]


def test_fit_saves_a_model_then_is_up_to_date_until_the_gallery_grows(
    run: Run, photos: list[Path], tmp_path: Path, settings: Settings
) -> None:
    folder = tmp_path / "few"
    folder.mkdir()
    for photo in photos[:8]:
        shutil.copy(photo, folder)
    assert run("import", str(folder))[0] == 0
    code, output = run("fit")
    assert code != 0 and "8 images" in output and "at least 10" in output
    assert "Traceback" not in output
    for photo in photos[8:]:
        shutil.copy(photo, folder)
    run("import", str(folder))
    code, output = run("fit")
    assert code == 0, output
    assert re.search(r"chosen: \d+ components, (full|diag) covariance", output)
    assert "15 reference images" in output and "BIC" in output
    saved = Path(re.search(r"saved: (\S+)", output)[1])  # type: ignore[index]
    assert saved.is_relative_to(settings.root)
    assert (saved / "bic.png").stat().st_size > 0 and (saved / "scores.png").stat().st_size > 0
    assert run("fit", "--if-due") == (0, "the gallery model is up to date\n")


def test_train_watermark_reports_held_out_precision_and_recall(
    run: Run, photo_dir: Path, settings: Settings
) -> None:
    run("import", str(photo_dir))
    code, output = run("train", "watermark", "--variants", "1", "--limit", "12")
    assert code == 0, output
    found = re.search(
        r"held out: precision ([0-9.]+), recall ([0-9.]+), accuracy ([0-9.]+)", output
    )
    assert found and all(0 <= float(v) <= 1 for v in found.groups())
    assert re.search(r"\((\d+) train, (\d+) test; 0 admin-labelled watermarks\)", output)
    saved = Path(re.search(r"saved: (\S+)", output)[1])  # type: ignore[index]
    assert saved.is_relative_to(settings.root) and any(saved.iterdir())


def test_train_watermark_without_references_is_a_clear_error(run: Run) -> None:
    run("init")
    code, output = run("train", "watermark")
    assert code != 0 and "0 reference images" in output and "Traceback" not in output


def test_explain_shows_an_imported_image_and_refuses_unknown_keys(
    run: Run, photo_dir: Path
) -> None:
    run("import", str(photo_dir / "flow.jpg"))
    code, output = run("explain", "1")
    assert code == 0 and "flow" in output and "decision: published" in output
    code, output = run("explain", "t3_nothing")
    assert code != 0 and "no candidate, image or post 't3_nothing'" in output


def labelled_tree(root: Path, gallery: list[Path], fresh: list[Path]) -> None:
    """good/: photos not in the gallery; duplicate/: an exact, a resized and a mirrored copy."""
    for label in ("good", "duplicate"):
        (root / label).mkdir(parents=True)
    for photo in fresh:
        shutil.copy(photo, root / "good")
    shutil.copy(gallery[0], root / "duplicate" / "exact.jpg")
    resized = Image.open(gallery[1]).convert("RGB")
    resized = resized.resize((resized.width * 2 // 3, resized.height * 2 // 3))
    (root / "duplicate" / "resized.jpg").write_bytes(jpeg(resized, quality=60))
    mirrored = ImageOps.mirror(Image.open(gallery[2]).convert("RGB"))
    (root / "duplicate" / "mirrored.jpg").write_bytes(jpeg(mirrored))
    (root / "good" / "broken.jpg").write_bytes(badfiles.corrupt_jpeg(gallery[3]))


def test_evaluate_prints_the_confusion_counts_of_a_labelled_tree(
    run: Run, photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the duplicate checks run: their outcome on these files is known exactly.
    for off in ("GALLERY_FIT", "NSFW_NUDENET", "NSFW_CLIP", "WATERMARK_FILTER"):
        monkeypatch.setenv(f"SCENERY_{off}", "0")
    gallery, fresh = photos[:10], photos[10:14]
    folder = tmp_path / "gallery"
    folder.mkdir()
    for photo in gallery:
        shutil.copy(photo, folder)
    run("import", str(folder))
    labelled_tree(tmp_path / "labelled", gallery, fresh)
    code, output = run("evaluate", str(tmp_path / "labelled"))
    assert code == 0, output
    # precision, recall, tp, fp, fn, tn
    assert counts(output, "duplicate") == ["1.000", "1.000", "3", "0", "0", "4"]
    assert counts(output, "overall") == ["1.000", "1.000", "3", "0", "0", "4"]
    assert counts(output, "good") == ["4", "0", "0"]  # published, queued, rejected
    assert counts(output, "duplicate") != counts(output, "good")
    assert "7 images evaluated, 1 unreadable" in output and "broken.jpg" in output


def test_evaluate_counts_every_labelled_image_once_with_the_models_on(
    run: Run, photos: list[Path], tmp_path: Path
) -> None:
    gallery = photos[:12]
    folder = tmp_path / "gallery"
    folder.mkdir()
    for photo in gallery:
        shutil.copy(photo, folder)
    run("import", str(folder))
    assert run("fit")[0] == 0
    labelled_tree(tmp_path / "labelled", gallery, photos[12:14])
    (tmp_path / "labelled" / "offtopic").mkdir()
    shutil.copy(photos[14], tmp_path / "labelled" / "offtopic")  # an indoor still life
    code, output = run("evaluate", str(tmp_path / "labelled"))
    assert code == 0, output
    for kind, positives in (("offtopic", 1), ("nsfw", 0), ("duplicate", 3)):
        tp, fp, fn, tn = map(int, counts(output, kind)[2:])
        assert (tp + fn, tp + fp + fn + tn) == (positives, 6), (kind, output)
    assert "6 images evaluated, 1 unreadable" in output
