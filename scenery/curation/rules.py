"""Image rules: size and shape limits a gallery image must meet."""

from __future__ import annotations

from dataclasses import dataclass

from scenery.config import Settings
from scenery.curation.verdicts import Facts, FilterResult, Verdict


@dataclass(frozen=True)
class ImageRules:
    """At least ``min_pixels`` in area; neither too wide nor too tall."""

    min_pixels: int
    max_wide_ratio: float
    max_tall_ratio: float
    name: str = "image_rules"

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageRules:
        return cls(settings.min_pixels, settings.max_wide_ratio, settings.max_tall_ratio)

    def check(self, facts: Facts) -> FilterResult:
        w, h = facts.width, facts.height
        area = w * h
        if area < self.min_pixels:
            return self._fail(area, "too_small", f"{w}x{h} is under {self.min_pixels:,} pixels")
        if w / h > self.max_wide_ratio:
            return self._fail(w / h, "too_wide", f"{w}x{h} is wider than {self.max_wide_ratio}:1")
        if h / w > self.max_tall_ratio:
            return self._fail(h / w, "too_tall", f"{w}x{h} is taller than 1:{self.max_tall_ratio}")
        return FilterResult(self.name, Verdict.PASS, float(area), f"{w}x{h}", "ok")

    def _fail(self, score: float, code: str, reason: str) -> FilterResult:
        return FilterResult(self.name, Verdict.FAIL, float(score), reason, code)
