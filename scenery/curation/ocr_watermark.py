"""Text-watermark filter: a pretrained OCR model reads the photo; ``ocr_evidence`` judges it.

RapidOCR (rapidocr-onnxruntime, Apache-2.0) carries PP-OCRv4 detection and recognition models
in its wheel and runs them on ONNX Runtime: nothing is downloaded and nothing is trained. It is
imported on first use, once per process. This is a separate signal from the CLIP quadrant
detector (``watermark``), which learns logos and other marks that are not text.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from PIL import Image

from scenery.config import Settings
from scenery.curation.ocr_evidence import Evidence, TextLine, judge, merge_rows
from scenery.curation.verdicts import Facts, FilterResult, Verdict, band_margin
from scenery.errors import ModelLoadError
from scenery.imaging import ImageLimits, decode
from scenery.onnx_sessions import quiet_session

log = logging.getLogger(__name__)

NAME = "watermark_text"


def text_view(image: Image.Image, max_side: int) -> Image.Image:
    """The RGB view the OCR reads: the image shrunk to ``max_side`` on its long side (never
    enlarged; small text is lost by enlarging as much as by not reading it)."""
    rgb = image.convert("RGB")
    if max(rgb.size) <= max_side:
        return rgb
    scale = max_side / max(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def decoded_text_view(data: bytes, limits: ImageLimits, side: int) -> Image.Image:
    """The OCR's view decoded from a file's bytes (a JPEG at the DCT scale just above it)."""
    return text_view(decode(data, limits, edge=side).image, side)


class OcrReader:
    """RapidOCR's detector and recogniser, loaded on first use and shared by threads."""

    def __init__(self, max_side: int = 1024, threads: int | None = None) -> None:
        self.max_side = max_side
        self.threads = threads  # onnxruntime intra-op threads; None: its default (all cores)
        self._load_lock = threading.Lock()
        # One reading at a time: each already uses every core it is given, and RapidOCR keeps
        # per-call state on the engine object.
        self._run_lock = threading.Lock()
        self._engine: Any = None

    def load(self) -> Any:
        """Load the OCR engine now (once) and return it."""
        with self._load_lock:
            if self._engine is None:
                self._engine = self._build()
            return self._engine

    def _build(self) -> Any:
        log.info("loading RapidOCR (PP-OCRv4 models from the rapidocr-onnxruntime wheel)")
        try:
            from rapidocr_onnxruntime import RapidOCR

            # Detection at our view size, not RapidOCR's default of enlarging the short side
            # to 736 px; no angle classifier (watermarks are not upside down).
            engine = RapidOCR(
                det_limit_type="max",
                det_limit_side_len=self.max_side,
                max_side_len=max(self.max_side, 2000),
                use_cls=False,
                print_verbose=False,
            )
            _quiet_sessions(engine, self.threads)
            return engine
        except Exception as exc:
            raise ModelLoadError(
                f"could not load RapidOCR: {exc}. Install rapidocr-onnxruntime 1.4 (its wheel "
                "carries the models), or set SCENERY_OCR_WATERMARK=false."
            ) from exc

    def read(self, image: Image.Image) -> list[TextLine]:
        """The lines of text in an image, with boxes as shares of its width and height."""
        view = text_view(image, self.max_side)
        engine = self.load()
        with self._run_lock:
            found, _ = engine(view, use_cls=False)
        lines = merge_rows([_line(item) for item in found or ()])
        return [_share(line, view.size) for line in lines]


def _line(item: Sequence[Any]) -> TextLine:
    """One of RapidOCR's ``[box, text, confidence]`` results, box in pixels."""
    box, text, confidence = item[0], item[1], item[2]
    corners = tuple((float(x), float(y)) for x, y in box[:4])
    return TextLine(str(text), float(confidence), corners)  # type: ignore[arg-type]


def _share(line: TextLine, size: tuple[int, int]) -> TextLine:
    """The line with its corners as shares of the frame, clamped into it."""
    w, h = size
    corners = tuple((min(max(x / w, 0.0), 1.0), min(max(y / h, 0.0), 1.0)) for x, y in line.box)
    return TextLine(line.text, line.confidence, corners)  # type: ignore[arg-type]


def _quiet_sessions(engine: Any, threads: int | None) -> None:
    """Rebuild RapidOCR's ONNX sessions without idle spinning (and with ``threads``).

    RapidOCR takes no such option; its default sessions spin idle threads, which on a small
    machine takes cores from the decode and CLIP work running beside it (NudeNet's did).
    """
    for holder in (
        getattr(engine.text_det, "infer", None),
        getattr(engine.text_rec, "session", None),
    ):
        session = getattr(holder, "session", None)
        if holder is None or session is None:
            log.warning("RapidOCR's sessions are not where 1.4 keeps them; left as they are")
            continue
        holder.session = quiet_session(session._model_path, threads)


class OcrWatermarkFilter:
    """Fails or queues a candidate whose text reads like a watermark."""

    name = NAME

    def __init__(
        self,
        reader: OcrReader,
        threshold: float = 0.8,
        borderline: float = 0.5,
        cache_size: int = 4096,
    ) -> None:
        self.reader = reader
        self.threshold = threshold
        self.borderline = borderline
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Evidence] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> OcrWatermarkFilter | None:
        """Build the filter, or None when SCENERY_OCR_WATERMARK turns it off."""
        if not settings.ocr_watermark:
            return None
        reader = OcrReader(settings.ocr_max_side, settings.ocr_threads)
        return cls(reader, settings.ocr_watermark_threshold, settings.ocr_watermark_borderline)

    @property
    def max_side(self) -> int:
        """The long side of the view the OCR reads (what ``Facts.text_view`` should be)."""
        return self.reader.max_side

    def prepare(self, batch: Sequence[Facts]) -> None:
        """Read every candidate of a batch not read yet; ``check`` then looks the results up."""
        for facts in batch:
            self.evidence(facts)

    def evidence(self, facts: Facts) -> Evidence:
        """What the OCR found on a candidate (read now unless read before)."""
        with self._lock:
            cached = self._cache.get(facts.sha256)
        if cached is not None:
            return cached
        view = facts.text_view() if callable(facts.text_view) else facts.text_view
        view = facts.image if view is None else view
        found = judge(self.reader.read(view))
        with self._lock:
            self._cache[facts.sha256] = found
            self._cache.move_to_end(facts.sha256)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def check(self, facts: Facts) -> FilterResult:
        """Fail at the threshold, queue at the borderline; the reason quotes what was read."""
        found = self.evidence(facts)
        margin = band_margin(found.score, self.borderline, self.threshold)
        if found.score >= self.threshold:
            verdict, code = Verdict.FAIL, "watermark_text"
        elif found.score >= self.borderline:
            verdict, code = Verdict.BORDERLINE, "watermark_text"
        else:
            verdict, code = Verdict.PASS, "ok"
        return FilterResult(
            self.name, verdict, found.score, describe(found, verdict), code, margin=margin
        )


def describe(found: Evidence, verdict: Verdict) -> str:
    """The reason shown in the queue, the rejected log and explain."""
    if not found.text:
        return "no text found"
    label = "text" if verdict == Verdict.PASS else "watermark text"
    cues = f"{', '.join(found.cues)}; " if found.cues else ""
    return f'{label} "{found.text}" {found.where} ({cues}score {found.score:.2f})'
