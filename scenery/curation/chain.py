"""Filters built from the context: near-duplicate checks against the gallery, and the
model-based filters from the newest saved models, as the settings enable them."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable

import numpy as np

from scenery.context import Context
from scenery.curation.duplicates import ClipDuplicate, HashBank, PerceptualDuplicate
from scenery.curation.gallery_fit import GalleryFit, load_gallery_model
from scenery.curation.nsfw import NsfwFilter
from scenery.curation.reference import reference_count
from scenery.curation.verdicts import Filter, by_cost, is_expensive
from scenery.curation.watermark import WatermarkFilter

log = logging.getLogger(__name__)


def nearest_published(ctx: Context) -> Callable[[np.ndarray], tuple[int, float] | None]:
    """Look up a vector's most similar published image in the index: (image id, cosine)."""

    def nearest(vector: np.ndarray) -> tuple[int, float] | None:
        ids, scores = ctx.index.index.query(vector, k=1, ef=ctx.settings.index_ef_search)
        return (int(ids[0]), float(scores[0])) if len(ids) else None

    return nearest


def near_duplicate_filters(ctx: Context, bank: HashBank) -> list[Filter]:
    """Perceptual-hash (and mirror) duplicates in ``bank``, CLIP duplicates in the index."""
    settings = ctx.settings
    return [
        PerceptualDuplicate(bank, settings.phash_max_distance),
        ClipDuplicate(
            nearest_published(ctx),
            settings.clip_duplicate_similarity,
            settings.clip_duplicate_borderline,
        ),
    ]


def model_filters(ctx: Context) -> list[Filter]:
    """Gallery fit, NSFW, watermark and watermark-text filters as the settings enable them,
    cheapest first (``verdicts.COST_ORDER``)."""
    settings, name = ctx.settings, ctx.embedder.name
    filters: list[Filter] = []
    if settings.gallery_fit:
        with ctx.sessions() as session:
            n = reference_count(session, name)
        model = load_gallery_model(settings)
        if model is not None and model.embedder != name:
            log.warning("the gallery model was fitted on %s, not %s: refit", model.embedder, name)
            model = None
        filters.append(GalleryFit(model, n, settings.gmm_min_reference))
    if settings.watermark_filter:
        watermark = WatermarkFilter.from_settings(settings, ctx.embedder, ctx.quadrant_embedder)
        if watermark is None:
            log.info("no watermark model yet: run `scenery train watermark`")
        else:
            filters.append(watermark)
    nsfw = NsfwFilter.from_settings(settings, ctx.embedder)
    if nsfw is not None:
        filters.append(nsfw)
    text = text_watermark_filter(ctx)
    if text is not None:
        filters.append(text)
    return by_cost(filters)


def expensive_filters(ctx: Context) -> list[Filter]:
    """The model filters a candidate rejected by a cheaper one skips, as the settings enable
    them: what must run on a candidate before an admin publishes it."""
    return [f for f in model_filters(ctx) if is_expensive(f.name)]


OCR_MODULE = "scenery.curation.ocr_watermark"


def text_watermark_filter(ctx: Context) -> Filter | None:
    """The OCR text-watermark filter, where its module exists and the settings enable it."""
    if importlib.util.find_spec(OCR_MODULE) is None:
        return None
    module = importlib.import_module(OCR_MODULE)
    built: Filter | None = module.OcrWatermarkFilter.from_settings(ctx.settings)
    return built
