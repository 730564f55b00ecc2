"""Text-watermark filter: RapidOCR for real on sample photos with text drawn at test time;
the evidence arithmetic on hand-made lines; hostile OCR output; loading once."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from scenery.config import Settings
from scenery.context import Context
from scenery.curation import evaluate as evaluation
from scenery.curation.ocr_evidence import MIDDLE_CAP, TextLine, clean_text, judge
from scenery.curation.ocr_watermark import OcrReader, OcrWatermarkFilter, text_view
from scenery.curation.verdicts import BatchPreparing, Facts, FilterResult, Verdict
from scenery.imaging import thumbnail

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
DEFAULTS = Settings()
THRESHOLD = DEFAULTS.ocr_watermark_threshold


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(str(FONT), size) if FONT.exists() else ImageFont.load_default(size)


def photo(photos: list[Path], name: str) -> Image.Image:
    return Image.open(next(p for p in photos if p.stem == name)).convert("RGB")


def overlay(image: Image.Image, text: str, where: str, share: float = 0.04, alpha: int = 255):
    """Text laid flat over the photo, as an export tool stamps it; where: tl, br, bc, cc..."""
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    f = font(max(10, round(base.height * share)))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=f)
    margin = round(base.height * 0.03)
    x = {"l": margin, "r": base.width - (x1 - x0) - margin}.get(where[1], (base.width - x1) // 2)
    y = {"t": margin, "b": base.height - (y1 - y0) - margin}.get(where[0], (base.height - y1) // 2)
    draw.text((x + 2 - x0, y + 2 - y0), text, font=f, fill=(0, 0, 0, alpha // 2))
    draw.text((x - x0, y - y0), text, font=f, fill=(255, 255, 255, alpha))
    return Image.alpha_composite(base, layer).convert("RGB")


def tiled(image: Image.Image, text: str, share: float = 0.06, alpha: int = 120) -> Image.Image:
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    f = font(round(base.height * share))
    width = draw.textlength(text, font=f)
    for row, y in enumerate(range(0, base.height, round(base.height * share * 3))):
        for x in range(-(row % 2) * round(width), base.width, round(width * 1.6)):
            draw.text((x, y), text, font=f, fill=(255, 255, 255, alpha))
    return Image.alpha_composite(base, layer).convert("RGB")


def perspective(
    source: list[tuple[float, float]], target: list[tuple[float, float]]
) -> list[float]:
    """PIL PERSPECTIVE coefficients: output (target) points to input (source) points."""
    rows, values = [], []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        values += [u, v]
    return [float(c) for c in np.linalg.solve(np.array(rows, float), np.array(values, float))]


def scene_sign(image: Image.Image, text: str, colour: tuple[int, int, int]) -> Image.Image:
    """A painted board with text, turned away from the camera, set into the middle of the scene."""
    base = image.convert("RGB")
    f = font(round(base.height * 0.06))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = (round(v) for v in probe.textbbox((0, 0), text, font=f))
    pad = (y1 - y0) // 2
    board = Image.new("RGB", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), colour)
    draw = ImageDraw.Draw(board)
    draw.rectangle((0, 0, board.width - 1, board.height - 1), outline=(240, 240, 240), width=4)
    draw.text((pad - x0, pad - y0), text, font=f, fill=(245, 245, 245))
    w, h = board.width, board.height
    cx, cy = base.width * 0.48, base.height * 0.52
    quad = [  # the left side nearer (taller) than the right, the top edge sloping
        (cx - w / 2, cy - h / 2),
        (cx + w / 2 * 0.8, cy - h * 0.3 + h * 0.08),
        (cx + w / 2 * 0.8, cy + h * 0.3 + h * 0.08),
        (cx - w / 2, cy + h / 2),
    ]
    coefficients = perspective([(0, 0), (w, 0), (w, h), (0, h)], quad)
    warped = board.transform(base.size, Image.Transform.PERSPECTIVE, coefficients)
    mask = Image.new("L", board.size, 255).transform(
        base.size, Image.Transform.PERSPECTIVE, coefficients
    )
    base.paste(warped, (0, 0), mask)
    return base


@pytest.fixture(scope="module")
def ocr() -> OcrWatermarkFilter:
    built = OcrWatermarkFilter.from_settings(DEFAULTS)
    assert built is not None
    return built


def facts_of(image: Image.Image, key: str, max_side: int = DEFAULTS.ocr_max_side) -> Facts:
    small = thumbnail(image, 400)
    return Facts(
        key,
        image.width,
        image.height,
        "0" * 16,
        "0" * 16,
        np.zeros(4, np.float32),
        small,
        text_view=text_view(image, max_side),
    )


# -- RapidOCR for real --------------------------------------------------------------------------


def test_corner_signature_fails_and_the_reason_quotes_it_and_its_corner(
    ocr: OcrWatermarkFilter, photos: list[Path]
) -> None:
    marked = overlay(photo(photos, "aitzgorri"), "© John Smith Photography", "br")
    result = ocr.check(facts_of(marked, "signature"))
    assert result.filter == "watermark_text"
    assert result.verdict == Verdict.FAIL, result.reason
    assert result.code == "watermark_text"
    assert result.score is not None and THRESHOLD <= result.score <= 1
    assert "John Smith Photography" in result.reason
    assert "bottom-right corner" in result.reason
    assert result.reason.startswith('watermark text "')
    assert result.margin is not None and result.margin >= 0


@pytest.mark.parametrize(
    ("name", "text", "where", "place"),
    [
        ("bythewater", "@alpine.lens", "tl", "top-left corner"),
        ("eveningglow", "www.smithphoto.com", "bc", "bottom edge"),
    ],
)
def test_handle_and_web_address_overlays_fail(
    ocr: OcrWatermarkFilter, photos: list[Path], name: str, text: str, where: str, place: str
) -> None:
    result = ocr.check(facts_of(overlay(photo(photos, name), text, where), text))
    assert result.verdict == Verdict.FAIL, result.reason
    assert text.lower() in result.reason.lower()
    assert place in result.reason


def test_tiled_stock_site_text_fails_as_repeated(
    ocr: OcrWatermarkFilter, photos: list[Path]
) -> None:
    result = ocr.check(facts_of(tiled(photo(photos, "picosdeeuropa"), "shutterstock"), "tiled"))
    assert result.verdict == Verdict.FAIL, result.reason
    assert "repeated" in result.reason


def test_semi_transparent_centred_text_is_at_least_queued(
    ocr: OcrWatermarkFilter, photos: list[Path]
) -> None:
    marked = overlay(photo(photos, "bridge"), "© Jane Doe Photography", "cc", 0.08, alpha=140)
    result = ocr.check(facts_of(marked, "centred"))
    # Text away from the borders is held below the fail threshold (scene text lives there),
    # so a centred mark without a stock-site name queues for a person.
    assert result.verdict == Verdict.BORDERLINE, result.reason
    assert "Jane Doe" in result.reason and "centred across the frame" in result.reason


def test_clean_photos_pass(ocr: OcrWatermarkFilter, photos: list[Path]) -> None:
    for name in ("aitzgorri", "bythewater", "picosdeeuropa"):
        result = ocr.check(facts_of(photo(photos, name), f"clean-{name}"))
        assert result.verdict == Verdict.PASS, (name, result.reason)
        assert result.code == "ok"


@pytest.mark.parametrize(
    ("name", "text", "colour"),
    [("life", "CAFE ROMA", (120, 30, 30)), ("path", "www.lakeviewinn.com", (20, 50, 120))],
)
def test_scene_text_in_perspective_is_read_but_not_rejected(
    ocr: OcrWatermarkFilter, photos: list[Path], name: str, text: str, colour: tuple[int, int, int]
) -> None:
    scene = scene_sign(photo(photos, name), text, colour)
    facts = facts_of(scene, f"scene-{name}")
    found = ocr.evidence(facts)
    # The sign was read (else this test would prove nothing), away from the borders.
    assert text.lower().replace(" ", "")[:6] in found.text.lower().replace(" ", ""), found
    assert "corner" not in found.where and "edge" not in found.where, found
    assert ocr.check(facts).verdict != Verdict.FAIL


def test_missing_text_view_reads_the_grid_thumbnail(photos: list[Path]) -> None:
    seen: list[tuple[int, int]] = []

    class Recording(OcrReader):
        def read(self, image: Image.Image) -> list[TextLine]:
            seen.append(image.size)
            return []

    facts = facts_of(photo(photos, "wine"), "no-view")
    facts.text_view = None
    result = OcrWatermarkFilter(Recording()).check(facts)
    assert seen == [facts.image.size]
    assert (result.verdict, result.score, result.reason) == (Verdict.PASS, 0.0, "no text found")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_evaluate_takes_watermark_recall_from_the_ocr_without_training(
    ctx: Context,
    ocr: OcrWatermarkFilter,
    photos: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "labelled"
    for label in ("good", "watermark"):
        (root / label).mkdir(parents=True)
    for name in ("aitzgorri", "bythewater"):
        photo(photos, name).save(root / "good" / f"{name}.jpg", quality=90)
    marks = (("picosdeeuropa", "© Jane Doe Photography", "br"), ("sunset", "@alpine.lens", "tl"))
    for name, text, where in marks:
        overlay(photo(photos, name), text, where).save(root / "watermark" / f"{name}.jpg")
    views: list[tuple[int, int] | None] = []

    class Recording(OcrWatermarkFilter):
        def check(self, facts: Facts) -> FilterResult:
            views.append(facts.text_view.size if facts.text_view is not None else None)
            return super().check(facts)

    only_ocr = Recording(ocr.reader, ocr.threshold, ocr.borderline)
    monkeypatch.setattr(evaluation, "model_filters", lambda ctx: [only_ocr])
    result = evaluation.evaluate(ctx, root)
    confusion = result.by_kind["watermark"]
    assert (confusion.tp, confusion.fp, confusion.fn, confusion.tn) == (2, 0, 0, 2)
    assert result.decisions["watermark"]["rejected"] == 2
    assert result.decisions["good"]["published"] == 2
    # The photos are 1,600 px wide: each was decoded for, and read at, the OCR's own size.
    assert len(views) == 4
    assert all(size is not None and max(size) == DEFAULTS.ocr_max_side for size in views)


# -- the evidence, on hand-made lines ----------------------------------------------------------


def line(text: str, x0: float, y0: float, x1: float, y1: float, confidence: float = 0.97):
    return TextLine(text, confidence, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


class Canned(OcrReader):
    """A reader that 'reads' what it is given, without a model."""

    def __init__(self, lines: Sequence[TextLine]) -> None:
        super().__init__()
        self.lines = list(lines)

    def read(self, image: Image.Image) -> list[TextLine]:
        return self.lines


def check(lines: Sequence[TextLine]) -> Any:
    image = Image.new("RGB", (64, 48))
    facts = Facts("x", 64, 48, "0", "0", np.zeros(4, np.float32), image)
    return OcrWatermarkFilter(Canned(lines), THRESHOLD, DEFAULTS.ocr_watermark_borderline).check(
        facts
    )


def test_middle_text_saying_what_watermarks_say_stays_below_fail() -> None:
    for text in ("www.lakeviewinn.com", "© 1923", "PHOTO STUDIO", "@cafe.roma"):
        for x0 in (0.2, 0.35):  # off centre and centred
            found = judge([line(text, x0, 0.45, x0 + 0.3, 0.52, confidence=1.0)])
            assert found.score <= MIDDLE_CAP < THRESHOLD, text
    # ... while the same words in a corner fail.
    assert judge([line("www.lakeviewinn.com", 0.7, 0.92, 0.97, 0.97)]).score >= THRESHOLD


def test_stock_site_name_fails_anywhere() -> None:
    assert judge([line("shutterstock", 0.4, 0.45, 0.6, 0.52)]).score >= THRESHOLD


def test_plain_text_in_a_corner_queues_and_in_the_middle_passes() -> None:
    corner = check([line("Jane Doe", 0.8, 0.92, 0.97, 0.97)])
    middle = check([line("Jane Doe", 0.3, 0.45, 0.5, 0.52)])
    centred = check([line("Jane Doe", 0.4, 0.45, 0.6, 0.52)])  # level and centred: an overlay
    assert corner.verdict == Verdict.BORDERLINE
    assert middle.verdict == Verdict.PASS
    assert centred.verdict == Verdict.BORDERLINE and "centred" in centred.reason


def test_one_string_repeated_across_the_frame_is_tiling_but_not_within_one_sign() -> None:
    spread = [
        line("Kenji Doe", x, y, x + 0.2, y + 0.05) for x, y in ((0.1, 0.2), (0.6, 0.45), (0.2, 0.7))
    ]
    close = [line("Kenji Doe", 0.3, y, 0.5, y + 0.05) for y in (0.4, 0.47)]
    tiled_found = judge(spread)
    assert tiled_found.score >= THRESHOLD and "repeated 3 times" in tiled_found.where
    assert judge(close).score < DEFAULTS.ocr_watermark_borderline


def test_stray_characters_and_unsure_reads_are_ignored() -> None:
    assert judge([line("l1", 0.9, 0.9, 0.95, 0.95)]).score == 0
    assert judge([line("© Jane Doe", 0.8, 0.9, 0.97, 0.97, confidence=0.3)]).score == 0


def test_nothing_read_is_a_pass_with_score_zero() -> None:
    result = check([])
    assert (result.verdict, result.score, result.code) == (Verdict.PASS, 0.0, "ok")
    assert result.reason == "no text found"


def test_hostile_ocr_output_becomes_one_bounded_line_of_plain_text() -> None:
    hostile = '<script>alert(1)</script>"\n\r\x00\u202e\u200b© ' + "A" * 500
    nasty = [
        line(hostile, 0.7, 0.9, 0.99, 0.99),
        TextLine("nan box", float("nan"), ((0, 0), (0, 0), (0, 0), (0, 0))),
        line("far away", -5, -5, 1e9, 1e9),
    ]
    result = check(nasty)
    assert result.verdict == Verdict.FAIL  # the © in the corner still counts
    assert "\n" not in result.reason and "\r" not in result.reason and "\x00" not in result.reason
    assert "\u202e" not in result.reason and "\u200b" not in result.reason
    quoted = result.reason.split('"')
    assert len(quoted) == 3, result.reason  # the text's own quotes cannot close the quotation
    assert len(quoted[1]) <= 60
    assert clean_text("a\tb\u2028c") == "a b c"


# -- settings and loading ----------------------------------------------------------------------


def test_setting_turns_the_filter_off() -> None:
    assert OcrWatermarkFilter.from_settings(Settings(ocr_watermark=False)) is None
    built = OcrWatermarkFilter.from_settings(
        Settings(ocr_max_side=640, ocr_watermark_threshold=0.9)
    )
    assert built is not None and built.max_side == 640 and built.threshold == 0.9
    assert isinstance(built, BatchPreparing)


def test_the_engine_loads_once_for_many_threads() -> None:
    builds = []
    gate = threading.Barrier(4)

    class Counting(OcrReader):
        def _build(self) -> Any:
            builds.append(threading.get_ident())
            return object()

    reader = Counting()

    def load() -> None:
        gate.wait()
        engines.append(reader.load())

    engines: list[Any] = []
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(set(map(id, engines))) == 1


def test_text_view_shrinks_to_the_long_side_and_never_enlarges() -> None:
    assert text_view(Image.new("RGB", (1600, 900)), 1024).size == (1024, 576)
    assert text_view(Image.new("L", (300, 200)), 1024).size == (300, 200)
    assert text_view(Image.new("L", (300, 200)), 1024).mode == "RGB"
