"""Watermark styles and scene text drawn onto real photos, for bench/watermark.py.

Overlays are drawn flat over the frame, as a photographer's export tool or a stock site does;
scene text is painted on a board that is warped in perspective and set into the middle of the
scene, shaded like the photo around it, as a shop sign or a road sign would be.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageStat

FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
)
FIRST = ("Jane", "Alex", "Marta", "Kenji", "Olga", "Lucas", "Ines", "Priya", "Tom", "John")
LAST = ("Doe", "Berg", "Ruiz", "Tanaka", "Novak", "Moreau", "Costa", "Shah", "Lind", "Smith")
STOCK = ("shutterstock", "getty images", "iStock", "alamy", "dreamstime", "depositphotos", "123RF")
SCENE = (
    "MAIN ST",
    "CAFE ROMA",
    "HOTEL ALPINA",
    "STOP",
    "SEA BREEZE",
    "BAKERY",
    "ROUTE 66",
    "PARKING",
    "Fish & Chips",
    "Trailhead 2.5 km",
    "OPEN",
    "Lake View Inn",
    "PHOTO SHOP",
    "www.lakeviewinn.com",  # scene text that says what watermarks say
)
CORNERS = ("br", "bl", "tr", "tl")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Drawn = tuple[Image.Image, str]  # the marked photo and the text drawn on it


@functools.cache
def font(size: int, index: int = 0) -> Font:
    """A TrueType font of this pixel size (Pillow's own scalable font where none is installed)."""
    paths = [p for p in FONTS if Path(p).exists()]
    if paths:
        return ImageFont.truetype(paths[index % len(paths)], size)
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class Style:
    """One way of marking a photo; ``text`` styles count towards the OCR recall."""

    name: str
    text: bool
    draw: Callable[[Image.Image, random.Random, float, float], Drawn]


def _name(r: random.Random) -> tuple[str, str]:
    return r.choice(FIRST), r.choice(LAST)


def _stamp(text: str, height: int, opacity: float, r: random.Random) -> Image.Image:
    """White (or dark) text with a soft shadow, as RGBA, cropped to its ink."""
    f = font(height, r.randrange(len(FONTS)))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=f)
    pad = max(2, height // 6)
    stamp = Image.new("RGBA", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(stamp)
    light = r.random() < 0.8
    fill, shade = ((255, 255, 255), (0, 0, 0)) if light else ((20, 20, 20), (255, 255, 255))
    alpha = round(255 * opacity)
    draw.text((pad - x0 + 1, pad - y0 + 1), text, font=f, fill=(*shade, alpha // 2))
    draw.text((pad - x0, pad - y0), text, font=f, fill=(*fill, alpha))
    return stamp


def _paste(image: Image.Image, stamp: Image.Image, where: str, r: random.Random) -> Image.Image:
    base = image.convert("RGBA")
    margin = round(min(base.size) * r.uniform(0.015, 0.04))
    if stamp.width > base.width - 2 * margin:  # a long line on a narrow photo: shrink to fit
        scale = (base.width - 2 * margin) / stamp.width
        stamp = stamp.resize((max(1, int(stamp.width * scale)), max(1, int(stamp.height * scale))))
    x = {"l": margin, "r": base.width - stamp.width - margin}.get(where[1:], 0)
    if where[1:] not in ("l", "r"):
        x = (base.width - stamp.width) // 2
    y = {"t": margin, "b": base.height - stamp.height - margin}.get(where[0], 0)
    if where[0] not in ("t", "b"):
        y = (base.height - stamp.height) // 2
    base.alpha_composite(stamp, (x, y))
    return base.convert("RGB")


def _text_height(image: Image.Image, share: float) -> int:
    return max(10, round(image.height * share))


def corner_signature(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    first, last = _name(r)
    text = r.choice((f"© {first} {last} Photography", f"© {first} {last}", f"(c) {last} Photo"))
    where = r.choice(CORNERS)
    return _paste(image, _stamp(text, _text_height(image, size), opacity, r), where, r), text


def handle(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    first, last = _name(r)
    text = r.choice((f"@{first.lower()}.{last.lower()}", f"@{last.lower()}_photo", "@alpine.lens"))
    where = r.choice((*CORNERS, "bc"))
    return _paste(image, _stamp(text, _text_height(image, size), opacity, r), where, r), text


def url(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    first, last = _name(r)
    text = r.choice(
        (
            f"www.{last.lower()}photo.com",
            f"{first.lower()}{last.lower()}.net",
            f"{last.lower()}.photography",
        )
    )
    where = r.choice((*CORNERS, "bc", "tc"))
    return _paste(image, _stamp(text, _text_height(image, size), opacity, r), where, r), text


def centred(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    first, last = _name(r)
    text = r.choice((f"© {first} {last}", f"{first} {last} Photography", "SAMPLE", r.choice(STOCK)))
    stamp = _stamp(text, _text_height(image, size * 2.5), opacity * 0.6, r)  # 33-60%
    return _paste(image, stamp, "cc", r), text


def tiled(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    first, last = _name(r)
    text = r.choice((*STOCK, f"© {first} {last}"))
    stamp = _stamp(text, _text_height(image, size * 1.6), opacity * 0.55, r)  # 30-55%
    angle = r.choice((0, 0, 20, -30))
    if angle:
        stamp = stamp.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    base = image.convert("RGB")
    ink, alpha = stamp.convert("RGB"), stamp.getchannel("A")
    step_x, step_y = round(stamp.width * 1.6), round(stamp.height * 3.0)
    for row, y in enumerate(range(-stamp.height // 2, base.height, step_y)):
        for x in range(-(row % 2) * step_x // 2, base.width, step_x):
            base.paste(ink, (x, y), alpha)  # blends by the stamp's alpha; may overhang
    return base, text


def logo(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    """A small round mark with initials: the style OCR is not meant to carry."""
    first, last = _name(r)
    side = max(24, round(image.height * size * 2.5))
    mark = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    alpha = round(255 * opacity)
    width = max(2, side // 14)
    draw.ellipse((1, 1, side - 2, side - 2), outline=(255, 255, 255, alpha), width=width)
    f = font(round(side * 0.38))
    draw.text(
        (side / 2, side / 2), first[0] + last[0], font=f, fill=(255, 255, 255, alpha), anchor="mm"
    )
    return _paste(image, mark, r.choice(CORNERS), r), f"{first[0]}{last[0]} logo"


def _coefficients(
    source: list[tuple[float, float]], target: list[tuple[float, float]]
) -> list[float]:
    """PIL PERSPECTIVE coefficients sending points of ``target`` (output) to ``source``."""
    import numpy as np

    rows, values = [], []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values += [u, v]
    return [float(c) for c in np.linalg.solve(np.array(rows, float), np.array(values, float))]


def scene_sign(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    """Text on a board set into the scene in perspective, shaded like its surroundings."""
    text = r.choice(SCENE)
    base = image.convert("RGB")
    height = _text_height(base, size * 1.5)
    f = font(height, r.randrange(len(FONTS)))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=f)
    pad = height // 2
    board = Image.new(
        "RGB",
        (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad),
        r.choice(((30, 90, 40), (20, 50, 120), (235, 230, 215), (140, 30, 30), (60, 45, 35))),
    )
    draw = ImageDraw.Draw(board)
    ink = (255, 255, 255) if sum(board.getpixel((0, 0))) < 400 else (25, 25, 25)  # type: ignore[arg-type]
    draw.rectangle((0, 0, board.width - 1, board.height - 1), outline=ink, width=max(2, pad // 4))
    draw.text((pad - x0, pad - y0), text, font=f, fill=ink)
    # Place it in the middle third, turned away from the camera: one side nearer than the other.
    scale = min(1.0, base.width * 0.5 / board.width)
    w, h = board.width * scale, board.height * scale
    cx = base.width * r.uniform(0.4, 0.6)
    cy = base.height * r.uniform(0.42, 0.6)
    near, far = h, h * r.uniform(0.45, 0.7)
    tilt = r.uniform(-0.25, 0.25) * h
    quad = [
        (cx - w / 2, cy - near / 2 + tilt),
        (cx + w / 2 * 0.85, cy - far / 2),
        (cx + w / 2 * 0.85, cy + far / 2),
        (cx - w / 2, cy + near / 2 + tilt),
    ]
    if r.random() < 0.5:  # turned the other way
        quad = [(2 * cx - x, y) for x, y in (quad[1], quad[0], quad[3], quad[2])]
    corners = [(0, 0), (board.width, 0), (board.width, board.height), (0, board.height)]
    coefficients = _coefficients(corners, quad)
    warped = board.transform(
        base.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC
    )
    mask = Image.new("L", board.size, 255).transform(
        base.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR
    )
    # Light the board like the scene around it and soften it to the photo's own sharpness.
    level = ImageStat.Stat(base.convert("L")).mean[0] / 128
    warped = Image.eval(warped, lambda v: min(255, round(v * (0.6 + 0.4 * min(level, 1.3)))))
    warped = warped.filter(ImageFilter.GaussianBlur(0.6))
    base.paste(warped, (0, 0), mask)
    return base, text


def clean(image: Image.Image, r: random.Random, size: float, opacity: float) -> Drawn:
    return image.convert("RGB"), ""


STYLES = (
    Style("corner signature", True, corner_signature),
    Style("@handle", True, handle),
    Style("URL", True, url),
    Style("centred translucent", True, centred),
    Style("tiled stock", True, tiled),
    Style("logo mark", False, logo),
)
NEGATIVES = (Style("clean", False, clean), Style("scene text", False, scene_sign))
SIZES = (0.025, 0.035, 0.05)  # text height as a share of the photo's height
OPACITIES = (0.55, 0.8, 1.0)
