"""The model-based curation filters, built from the newest saved models and the settings."""

from __future__ import annotations

import logging

from scenery.context import Context
from scenery.curation.gallery_fit import GalleryFit, load_gallery_model
from scenery.curation.nsfw import NsfwFilter
from scenery.curation.reference import reference_count
from scenery.curation.verdicts import Filter
from scenery.curation.watermark import WatermarkFilter

log = logging.getLogger(__name__)


def model_filters(ctx: Context) -> list[Filter]:
    """Gallery fit, watermark and NSFW filters, as the settings enable them."""
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
        watermark = WatermarkFilter.from_settings(settings, ctx.embedder)
        if watermark is None:
            log.info("no watermark model yet: run `scenery train watermark`")
        else:
            filters.append(watermark)
    nsfw = NsfwFilter.from_settings(settings, ctx.embedder)
    if nsfw is not None:
        filters.append(nsfw)
    return filters
