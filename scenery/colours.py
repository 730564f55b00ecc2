"""A photo's colours: how much of it falls into each of twelve named colours, and which leads.

The summary is taken from the grid thumbnail (what every image has), shrunk to 48 px: each
pixel is named by its hue, saturation and value (HSV): dark pixels are black, pale unsaturated
ones white, other unsaturated ones gray, dark oranges brown; the rest by hue. The shares (in
percent, one byte each) are stored with the image; the dominant colour is the named colour with
the largest share, where gray, black and white count only when nothing else covers a fifth of
the photo (a grey sky over a green valley is a green photo). "Similar by colour" compares the
share vectors (``colour_distance``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

NAMES = (
    "red",
    "orange",
    "yellow",
    "green",
    "teal",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
    "gray",
)
NEUTRAL = frozenset({"black", "white", "gray"})
SIDE = 48  # the summary looks at the thumbnail shrunk to this long side
LEADING_SHARE = 20  # a chromatic colour leads over neutral ones from this share (percent)
# Hue bands (degrees, upper bounds) for saturated pixels.
HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "teal"),
        (255, "blue"), (290, "purple"), (335, "pink"), (360, "red"))  # fmt: skip


def colour_shares(image: Image.Image) -> bytes:
    """Percent of the photo in each of ``NAMES``, one byte each (they sum to about 100)."""
    small = image.convert("RGB")
    small.thumbnail((SIDE, SIDE))
    hsv = np.asarray(small.convert("HSV"), np.float32).reshape(-1, 3) / 255.0
    hue, sat, val = hsv[:, 0] * 360.0, hsv[:, 1], hsv[:, 2]
    names = np.full(len(hsv), NAMES.index("gray"))
    chromatic = sat >= 0.2
    band = np.searchsorted(np.array([upper for upper, _ in HUES]), hue, side="right")
    band = np.minimum(band, len(HUES) - 1)
    by_hue = np.array([NAMES.index(name) for _, name in HUES])[band]
    names = np.where(chromatic, by_hue, names)
    brown = chromatic & (hue >= 10) & (hue < 45) & (val < 0.6)
    names = np.where(brown, NAMES.index("brown"), names)
    names = np.where(~chromatic & (val >= 0.85), NAMES.index("white"), names)
    names = np.where(val < 0.16, NAMES.index("black"), names)
    counts = np.bincount(names, minlength=len(NAMES))
    shares = np.round(100.0 * counts / max(len(hsv), 1))
    return bytes(int(s) for s in shares)


def dominant(shares: bytes) -> str:
    """The leading colour of a summary (neutral colours only when no other covers a fifth)."""
    values = list(shares)
    chromatic = [(v, -i) for i, v in enumerate(values) if NAMES[i] not in NEUTRAL]
    best_value, best = max(chromatic)
    if best_value >= LEADING_SHARE:
        return NAMES[-best]
    return NAMES[max(range(len(values)), key=lambda i: (values[i], -i))]


def as_vector(shares: bytes) -> np.ndarray:
    """A summary as a float vector of shares (0..1)."""
    return np.frombuffer(shares, np.uint8).astype(np.float32) / 100.0


def colour_distance(query: bytes, others: np.ndarray) -> np.ndarray:
    """How far each row of ``others`` (share vectors) is from ``query``: half the L1 distance,
    i.e. the share of the photo that would have to change colour (0 same .. 1 nothing alike)."""
    return np.abs(others - as_vector(query)).sum(axis=1) / 2.0
