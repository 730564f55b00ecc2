"""Benchmark inputs: distinct variants of the sample photos, made once into a folder."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageEnhance

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def photo_variants(target: Path, count: int) -> list[Path]:
    """Write ``count`` distinct JPEGs derived from the sample photos (crops, tones, mirrors)."""
    sources = sorted(PHOTOS.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"no sample photos in {PHOTOS}")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        source = sources[n % len(sources)]
        variant = n // len(sources)
        image = Image.open(source).convert("RGB")
        if variant:
            w, h = image.size
            inset = variant % 7
            image = image.crop((inset * 8, inset * 5, w - inset * 8, h - inset * 5))
            image = ImageEnhance.Brightness(image).enhance(1 + 0.02 * (variant % 5))
            if variant % 2:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = target / f"{source.stem}-{variant:03d}.jpg"
        image.save(path, "JPEG", quality=90)
        written.append(path)
    return written
