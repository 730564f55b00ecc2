"""What OCR'd text says about a watermark: where it sits, what it says, how often it repeats.

Pure functions over the lines an OCR model read (no model here; ``ocr_watermark`` runs it).
Watermarks live on the borders and in the corners, say who owns the photo (©, a URL, an
@handle, "photography", a stock site) or repeat one string across the frame; scene text (a
road sign, a shop front, a boat's name) sits in the picture and says something else. Text in
the middle of the frame is therefore held below the fail threshold unless it names a stock
site or is tiled: it can queue a photo, never reject it on its own.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

Point = tuple[float, float]

# (what the reason calls it, weight in [0, 1], pattern on the lowercased, NFKC-folded text)
CUES: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "stock-site name",
        1.0,
        re.compile(
            r"shutter|tterstock|getty\s?images|gettyimages|\bgetty\b|istock|alamy|adobe\s?stock"
            r"|dreamstime|deposit\s?photo|123\s?rf|bigstock|stock\s?photo"
        ),
    ),
    # PP-OCR often reads a © as "@", "①" or "C" followed by a space; a handle has no space.
    (
        "copyright mark",
        0.9,
        re.compile(r"©|\(c\)|copyright|all rights reserved|^[@①ⓒⓘc]\s+[a-z]"),
    ),
    ("proof mark", 0.85, re.compile(r"\b(sample|proof|preview|watermark)\b")),
    (
        "web address",
        0.85,
        re.compile(
            r"www\s?\.|https?:|[a-z0-9-]{2,}\s?\.\s?"
            r"(com|net|org|photo|photos|photography|io|de|co\.uk|art|me|info|pics)\b"
        ),
    ),
    ("@handle", 0.85, re.compile(r"@[a-z0-9_.]{3,}")),
    ("photography word", 0.75, re.compile(r"photo|studio|\bimages\b|\bpics\b|\bshots\b")),
)
CONTENT_WEIGHT = 0.85  # how far what the text says alone goes towards 1
POSITION_WEIGHT = 0.55  # how far where it sits alone goes (plain text in a corner: borderline)
# Where a line's centre lies: within EDGE_NEAR of an edge (a share of the frame) it is on the
# border, from EDGE_FAR inwards in the middle. The centre, not the box: a wide line across the
# middle (a shop front, a centred overlay) reaches the sides without being "on the border".
EDGE_NEAR = 0.1
EDGE_FAR = 0.25
CENTRED = 0.03  # a line's centre this close to the vertical mid-line counts as centred
LEVEL_DEGREES = 2.0
MIDDLE_CAP = 0.74  # the most a single line away from the borders can score (below fail)
MIN_CHARS = 2  # letters or digits a line needs to count at all (texture reads as "l", "1")
MIN_CONFIDENCE = 0.6
SAME_TEXT = 0.75  # difflib ratio at which two lines count as the same string (tiling)
MAX_QUOTE = 60


@dataclass(frozen=True)
class TextLine:
    """One line the OCR read: its text, confidence and corners as shares of the frame."""

    text: str
    confidence: float
    box: tuple[Point, Point, Point, Point]  # TL, TR, BR, BL in [0, 1] x [0, 1]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        xs, ys = [p[0] for p in self.box], [p[1] for p in self.box]
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def centre(self) -> Point:
        x0, y0, x1, y1 = self.bounds
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def area(self) -> float:
        """Area of the box (a quadrilateral, shoelace formula) as a share of the frame."""
        pts = self.box
        twice = sum(
            pts[i][0] * pts[(i + 1) % 4][1] - pts[(i + 1) % 4][0] * pts[i][1] for i in range(4)
        )
        return abs(twice) / 2

    @property
    def angle(self) -> float:
        """Slope of the top edge in degrees (0: horizontal)."""
        (x0, y0), (x1, y1) = self.box[0], self.box[1]
        return math.degrees(math.atan2(y1 - y0, x1 - x0)) if (x0, y0) != (x1, y1) else 0.0


@dataclass(frozen=True)
class Evidence:
    """The strongest watermark evidence in a frame and what it rests on."""

    score: float
    text: str = ""  # the line (or the repeated string) the score comes from
    where: str = ""  # "in the bottom-right corner", "repeated 5 times across the frame"...
    cues: tuple[str, ...] = ()
    lines: int = 0  # lines read in all
    coverage: float = 0.0  # share of the frame under text boxes (overlaps counted twice)


def clean_text(text: str) -> str:
    """Make OCR output safe to quote: no control or format characters, one line, bounded."""
    kept = "".join(
        " " if unicodedata.category(c)[0] in ("C", "Z") else c for c in str(text)
    ).replace('"', "'")
    kept = " ".join(kept.split())
    return kept if len(kept) <= MAX_QUOTE else kept[: MAX_QUOTE - 1] + "…"


def content_cues(text: str) -> list[tuple[str, float]]:
    """The watermark cues a string carries, with their weights."""
    folded = unicodedata.normalize("NFKC", text).lower().strip()
    # NFKC turns "①" into "1" and "©" stays; look at both forms for the misread ©.
    raw = text.lower().strip()
    return [
        (name, weight)
        for name, weight, pattern in CUES
        if pattern.search(folded) or pattern.search(raw)
    ]


def edge_weight(line: TextLine) -> float:
    """1 for text on the frame's border, 0 for text well inside it, linear between."""
    cx, cy = line.centre
    distance = min(cx, cy, 1 - cx, 1 - cy)
    if distance <= EDGE_NEAR:
        return 1.0
    if distance >= EDGE_FAR:
        return 0.0
    return (EDGE_FAR - distance) / (EDGE_FAR - EDGE_NEAR)


def place(line: TextLine) -> str:
    """Where a line sits, in words: "in the bottom-right corner", "along the top edge"..."""
    cx, cy = line.centre
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    vertical = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    near = edge_weight(line) >= 0.5
    if horizontal and vertical:
        return f"in the {vertical}-{horizontal} {'corner' if near else 'part of the frame'}"
    side = horizontal or vertical
    if side:
        return f"along the {side} edge" if near else f"{side} of centre"
    return "in the middle of the frame"


def _combine(weights: Sequence[float]) -> float:
    """Independent evidence: 1 - prod(1 - w)."""
    return 1 - math.prod(1 - w for w in weights)


def _key(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text).lower() if c.isalnum())


def _counts(line: TextLine) -> bool:
    return len(_key(line.text)) >= MIN_CHARS and line.confidence >= MIN_CONFIDENCE


def line_evidence(line: TextLine) -> Evidence:
    """Score one line by what it says and where it sits; middle text stays below fail."""
    cues = content_cues(line.text)
    content = _combine([w for _, w in cues])
    edge = edge_weight(line)
    position = max(edge, 1.0 if centred_level(line) else 0.0)
    if len(_key(line.text)) < 3 and not cues:
        position = 0.0  # two stray characters in a corner are not a signature
    score = line.confidence * _combine([CONTENT_WEIGHT * content, POSITION_WEIGHT * position])
    if edge < 0.5 and not any(name == "stock-site name" for name, _ in cues):
        score = min(score, MIDDLE_CAP)
    where = place(line)
    if edge < 0.5 and centred_level(line):
        where = "centred across the frame"
    return Evidence(round(score, 4), line.text, where, tuple(n for n, _ in cues))


def centred_level(line: TextLine) -> bool:
    """Level text centred left to right, as overlay tools place a mark (queues, never fails)."""
    return abs(line.centre[0] - 0.5) <= CENTRED and abs(line.angle) <= LEVEL_DEGREES


def repeated_groups(lines: Sequence[TextLine]) -> list[list[TextLine]]:
    """Lines grouped by (nearly) the same string, largest group first."""
    groups: list[list[TextLine]] = []
    for line in lines:
        key = _key(line.text)
        if len(key) < 3:
            continue
        for group in groups:
            if SequenceMatcher(None, key, _key(group[0].text)).ratio() >= SAME_TEXT:
                group.append(line)
                break
        else:
            groups.append([line])
    return sorted(groups, key=len, reverse=True)


def tiling_evidence(group: Sequence[TextLine]) -> Evidence | None:
    """Score one string repeated across the frame (a tiled watermark), or None."""
    if len(group) < 2:
        return None
    xs, ys = [line.centre[0] for line in group], [line.centre[1] for line in group]
    if max(max(xs) - min(xs), max(ys) - min(ys)) < 0.3:
        return None  # repeats close together: a word written twice on one sign
    coverage = sum(line.area for line in group)
    strength = min(1.0, 0.45 + 0.15 * len(group) + 2 * coverage)
    confidence = sorted((line.confidence for line in group), reverse=True)[1]
    cues = content_cues(group[0].text)
    content = _combine([w for _, w in cues])
    score = confidence * _combine([strength, CONTENT_WEIGHT * content])
    where = f"repeated {len(group)} times across the frame ({coverage:.0%} of it)"
    return Evidence(round(score, 4), group[0].text, where, tuple(n for n, _ in cues))


def _same_row(left: TextLine, right: TextLine) -> bool:
    """Whether ``right`` continues ``left`` on one horizontal line of text (same units on both
    axes: pixels, not shares of the frame)."""
    if abs(left.angle) > 10 or abs(right.angle) > 10:
        return False
    lx0, ly0, lx1, ly1 = left.bounds
    rx0, ry0, rx1, ry1 = right.bounds
    lh, rh = ly1 - ly0, ry1 - ry0
    if min(lh, rh) <= 0 or max(lh, rh) / min(lh, rh) > 1.6:
        return False
    height = max(lh, rh)
    # Boxes of one line may overlap (the detector pads each), but the right one must extend it.
    return (
        abs(left.centre[1] - right.centre[1]) < 0.35 * height
        and rx0 > lx0
        and rx1 > lx1
        and rx0 - lx1 <= 1.0 * height
    )


def merge_rows(lines: Sequence[TextLine]) -> list[TextLine]:
    """Join words the OCR read as separate boxes on one line ("©", "Jane", "Doe"), left to
    right; boxes must be in the same unit on both axes."""
    merged: list[TextLine] = []
    for line in sorted(lines, key=lambda item: item.bounds[0]):
        for i, row in enumerate(merged):
            if _same_row(row, line):
                merged[i] = _join(row, line)
                break
        else:
            merged.append(line)
    return merged


def _join(left: TextLine, right: TextLine) -> TextLine:
    x0, y0 = min(left.bounds[0], right.bounds[0]), min(left.bounds[1], right.bounds[1])
    x1, y1 = max(left.bounds[2], right.bounds[2]), max(left.bounds[3], right.bounds[3])
    a, b = max(1, len(left.text)), max(1, len(right.text))
    confidence = (left.confidence * a + right.confidence * b) / (a + b)
    box = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    return TextLine(f"{left.text} {right.text}", confidence, box)


def judge(lines: Sequence[TextLine]) -> Evidence:
    """The strongest evidence among the lines read, single or tiled; score 0 with no text."""
    counted = [line for line in lines if _counts(line)]
    coverage = round(sum(line.area for line in counted), 4)
    candidates = [line_evidence(line) for line in counted]
    candidates += [e for g in repeated_groups(counted) if (e := tiling_evidence(g)) is not None]
    best = max(candidates, key=lambda e: e.score, default=Evidence(0.0))
    return Evidence(
        best.score, clean_text(best.text), best.where, best.cues, len(counted), coverage
    )
