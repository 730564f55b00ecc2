"""Synthetic watermarks: text, handles, signatures and logos overlaid on clean photos.

The watermark detector learns from clean gallery images and copies of them carrying one of
these marks. Sizes are relative to the image so a mark stays as visible-but-small as real ones
(text 2-8% of the height, or of a portrait's width); tiled patterns are bigger and fainter.
Deterministic given the rng.
"""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("copyright", "url", "handle", "signature", "logo", "tiled")
# where a single mark goes: (left, centre or right; top, centre or bottom)
POSITIONS = ("lt", "rt", "lb", "rb", "cc", "ct", "cb", "lc", "rc")
FONT_ROOT = Path("/usr/share/fonts")

FIRST = ("Jane", "Alex", "Marta", "Kenji", "Olga", "Sam", "Lucas", "Ines", "Priya", "Tom")
LAST = ("Doe", "Berg", "Ruiz", "Tanaka", "Novak", "Hill", "Moreau", "Costa", "Shah", "Lind")
WORDS = ("photo", "shots", "lens", "light", "frames", "studio", "visuals", "captures", "pix")
PLACES = ("mountain", "urban", "wild", "coastal", "nordic", "golden", "misty", "desert")
TLDS = (".com", ".net", ".org", ".photo", ".io", ".de", ".co.uk")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Colour = tuple[int, int, int]


@functools.cache
def font_files() -> tuple[Path, ...]:
    """TrueType fonts installed on this machine (none: Pillow's built-in font is used)."""
    if not FONT_ROOT.is_dir():
        return ()
    return tuple(sorted(p for p in FONT_ROOT.rglob("*") if p.suffix.lower() in (".ttf", ".otf")))


def add_watermark(
    image: Image.Image, rng: random.Random | np.random.Generator, kind: str | None = None
) -> Image.Image:
    """Return an RGB copy of the image with one random synthetic watermark of the given kind."""
    r = _as_random(rng)
    kind = kind or r.choice(KINDS)
    if kind not in KINDS:
        raise ValueError(f"unknown watermark kind {kind!r}; one of {', '.join(KINDS)}")
    base = image.convert("RGBA")
    if kind == "tiled":
        layer = _tiled_layer(base.size, r)
    else:
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        stamp = _stamp(kind, base.size, r)
        if stamp.width > base.width * 0.95:  # a long URL on a narrow image: shrink to fit
            scale = base.width * 0.95 / stamp.width
            stamp = stamp.resize(
                (max(1, int(stamp.width * scale)), max(1, int(stamp.height * scale)))
            )
        layer.alpha_composite(stamp, _position(base.size, stamp.size, r))
        layer = _fade(layer, r.uniform(0.4, 0.95))
    return Image.alpha_composite(base, layer).convert("RGB")


def _as_random(rng: random.Random | np.random.Generator) -> random.Random:
    if isinstance(rng, np.random.Generator):
        return random.Random(int(rng.integers(0, 2**63 - 1)))
    return rng


def _font(r: random.Random, size: int) -> Font:
    files = font_files()
    if files and r.random() < 0.9:
        try:
            return ImageFont.truetype(str(r.choice(files)), size)
        except OSError:  # an unreadable or non-text font file: fall back below
            pass
    return ImageFont.load_default(size=size)


def _text(kind: str, r: random.Random) -> str:
    name = f"{r.choice(FIRST)} {r.choice(LAST)}"
    year = r.randint(1998, 2025)
    if kind == "copyright":
        return r.choice([f"© {name} {year}", f"© {year} {name}", f"© {name}", f"(c) {name}"])
    if kind == "url":
        host = f"{r.choice(PLACES)}{r.choice(['-', '', '_'])}{r.choice(WORDS)}{r.choice(TLDS)}"
        return r.choice(
            [f"www.{host}", host, f"https://{host}", f"{r.choice(LAST).lower()}.{host}"]
        )
    handle = f"{r.choice(PLACES)}_{r.choice(WORDS)}{r.choice(['', str(r.randint(1, 99))])}"
    return r.choice([f"@{handle}", f"u/{handle}", f"IG: @{handle}", f"r/{r.choice(WORDS)}porn"])


def _colours(r: random.Random) -> tuple[Colour, Colour]:
    """A fill colour and a contrasting outline colour: mostly white or black, some grey or hue."""
    white, black = r.randint(225, 255), r.randint(0, 40)
    light: Colour = (white, white, white)
    dark: Colour = (black, black, black)
    pick = r.random()
    if pick < 0.45:
        return light, dark
    if pick < 0.7:
        return dark, light
    if pick < 0.85:
        grey = r.randint(100, 180)
        return (grey, grey, grey), dark
    return (r.randint(0, 255), r.randint(0, 255), r.randint(0, 255)), dark


def _text_stamp(text: str, height: int, r: random.Random) -> Image.Image:
    font = _font(r, max(8, height))
    fill, outline = _colours(r)
    stroke = r.choice([0, 0, max(1, height // 14)])
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    pad = stroke + 2
    size = (int(right - left + 2 * pad), int(bottom - top + 2 * pad))
    stamp = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(stamp)
    origin = (pad - left, pad - top)
    if r.random() < 0.3:  # a soft drop shadow
        offset = max(1, height // 12)
        draw.text((origin[0] + offset, origin[1] + offset), text, font=font, fill=(*outline, 160))
    draw.text(origin, text, font=font, fill=(*fill, 255), stroke_width=stroke, stroke_fill=outline)
    return stamp


def _signature_stamp(height: int, r: random.Random) -> Image.Image:
    """A handwritten-looking scribble: a Catmull-Rom curve through up-and-down strokes."""
    width = int(height * r.uniform(2.5, 4.5))
    n = r.randint(10, 22)
    x, points = 0.05 * width, []
    for i in range(n):
        # mostly rightwards, now and then back a little, which draws the loops of letters
        step = r.uniform(-0.8, 0.2) if r.random() < 0.25 else r.uniform(0.8, 2.0)
        x += width * 0.9 / n * step
        x = min(max(x, 0.03 * width), 0.97 * width)
        low, high = (0.1, 0.45) if i % 2 else (0.55, 0.9)
        points.append((x, r.uniform(low, high) * height))
    padded = np.array([points[0], *points, points[-1]])
    t = np.linspace(0, 1, 12)[:, None]
    curve = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        curve.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    path = [tuple(p) for p in np.concatenate(curve)]
    stamp = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(stamp)
    fill, _ = _colours(r)
    line = max(2, height // r.randint(12, 22))
    draw.line(path, fill=(*fill, 255), width=line, joint="curve")
    if r.random() < 0.5:  # an underline flourish
        y = height * r.uniform(0.8, 0.92)
        draw.line(
            [(width * 0.1, y), (width * r.uniform(0.6, 0.95), y - height * 0.05)],
            fill=(*fill, 255),
            width=line,
        )
    return stamp


def _logo_stamp(height: int, r: random.Random) -> Image.Image:
    """Initials in a box or circle, sometimes with a name beside it."""
    fill, outline = _colours(r)
    box = Image.new("RGBA", (height, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(box)
    shape = r.choice(("circle", "square", "rounded"))
    edge = max(2, height // 14)
    solid = r.random() < 0.4
    rect = (edge, edge, height - edge - 1, height - edge - 1)
    inside = (*fill, 255) if solid else None
    if shape == "circle":
        draw.ellipse(rect, fill=inside, outline=(*fill, 255), width=edge)
    elif shape == "square":
        draw.rectangle(rect, fill=inside, outline=(*fill, 255), width=edge)
    else:
        draw.rounded_rectangle(
            rect, radius=height // 5, fill=inside, outline=(*fill, 255), width=edge
        )
    initials = "".join(r.choice("ABCDEFGHJKLMNPRSTVW") for _ in range(r.randint(1, 3)))
    font = _font(r, max(8, int(height * 0.42)))
    ink = (*outline, 255) if solid else (*fill, 255)
    draw.text((height / 2, height / 2), initials, font=font, fill=ink, anchor="mm")
    if r.random() < 0.5:
        return box
    label = _text_stamp(f"{r.choice(FIRST)} {r.choice(LAST)}", max(8, height // 2), r)
    stamp = Image.new("RGBA", (height + label.width + height // 6, height), (0, 0, 0, 0))
    stamp.alpha_composite(box, (0, 0))
    stamp.alpha_composite(label, (height + height // 6, (height - label.height) // 2))
    return stamp


def _stamp(kind: str, size: tuple[int, int], r: random.Random) -> Image.Image:
    height = min(size)  # the height of a landscape image; a portrait's width
    if kind == "signature":
        return _signature_stamp(max(12, int(height * r.uniform(0.06, 0.14))), r)
    if kind == "logo":
        return _logo_stamp(max(12, int(height * r.uniform(0.05, 0.12))), r)
    stamp = _text_stamp(_text(kind, r), max(8, int(height * r.uniform(0.02, 0.08))), r)
    if r.random() < 0.15:  # now and then set along a side, reading upwards
        stamp = stamp.rotate(90, expand=True)
    return stamp


def _position(size: tuple[int, int], stamp: tuple[int, int], r: random.Random) -> tuple[int, int]:
    (w, h), (sw, sh) = size, stamp
    margin = int(min(w, h) * r.uniform(0.01, 0.05))
    xs = {"l": margin, "c": (w - sw) // 2, "r": w - sw - margin}
    ys = {"t": margin, "c": (h - sh) // 2, "b": h - sh - margin}
    where = r.choice(POSITIONS)
    jitter = int(min(w, h) * 0.03)
    x = xs[where[0]] + (r.randint(-jitter, jitter) if where[0] == "c" else 0)
    y = ys[where[1]] + (r.randint(-jitter, jitter) if where[1] == "c" else 0)
    return max(0, min(x, w - sw)), max(0, min(y, h - sh))


def _tiled_layer(size: tuple[int, int], r: random.Random) -> Image.Image:
    """One text repeated over the whole image, usually on a diagonal, big and faint."""
    w, h = size
    short = min(size)
    text = _text(r.choice(("copyright", "url", "handle")), r)
    stamp = _text_stamp(text, int(short * r.uniform(0.05, 0.1)), r)
    angle = r.choice([r.uniform(-45, -20), r.uniform(20, 45), 0.0])
    # Rotate the one stamp and lay it on a rotated lattice: far cheaper than rotating a canvas.
    rotated = stamp.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    step_u = stamp.width * r.uniform(1.2, 1.8)
    step_v = stamp.height + short * r.uniform(0.08, 0.2)
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    reach = math.hypot(w, h) / 2 + max(rotated.size)
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    for row in range(-int(reach / step_v) - 1, int(reach / step_v) + 2):
        shift = step_u / 2 * (row % 2)
        for col in range(-int(reach / step_u) - 1, int(reach / step_u) + 2):
            u, v = col * step_u + shift, row * step_v
            x = w / 2 + u * cos + v * sin - rotated.width / 2  # text runs along (cos, -sin)
            y = h / 2 - u * sin + v * cos - rotated.height / 2
            _composite(layer, rotated, int(x), int(y))
    return _fade(layer, r.uniform(0.15, 0.4))


def _composite(layer: Image.Image, stamp: Image.Image, x: int, y: int) -> None:
    """Alpha-composite a stamp at (x, y), clipped to the layer (which may cut it on any side)."""
    if x >= layer.width or y >= layer.height or x + stamp.width <= 0 or y + stamp.height <= 0:
        return
    layer.alpha_composite(stamp, (max(0, x), max(0, y)), (max(0, -x), max(0, -y)))


def _fade(layer: Image.Image, opacity: float) -> Image.Image:
    alpha = layer.getchannel("A").point(lambda a: int(a * opacity))
    layer.putalpha(alpha)
    return layer
