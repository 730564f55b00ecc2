"""The facts of a decoded image, as the ingest workers make them, for the places that make
them again from a file: ``scenery evaluate`` and the checks run before publishing."""

from __future__ import annotations

import numpy as np
from PIL import Image

from scenery.curation.ocr_watermark import text_view
from scenery.curation.verdicts import Facts
from scenery.curation.watermark import detail_view
from scenery.imaging import Decoded, perceptual_hashes


def decoded_facts(
    sha256: str, decoded: Decoded, small: Image.Image, vector: np.ndarray, text_side: int
) -> Facts:
    """Facts from a decoded image, its grid thumbnail and its embedding (``text_side`` 0: no
    view for the OCR)."""
    phash, mirrored = perceptual_hashes(small)
    return Facts(
        sha256,
        decoded.width,
        decoded.height,
        phash,
        mirrored,
        vector,
        small,
        detail_view(decoded.image),
        text_view(decoded.image, text_side) if text_side else None,
    )
