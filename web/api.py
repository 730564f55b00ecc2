"""The JSON API: listing, image details, text/image search and similar images."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flask import Blueprint, request
from PIL import Image as PILImage
from sqlalchemy import ColumnElement

from scenery.colour_search import similar_colours
from scenery.image_filters import LOCAL, ImageFilter, orientation_of, parse_filter
from scenery.imaging import ImageLimits
from scenery.library import count_published, get_image, published_page, published_sources
from scenery.models import Image, isoformat
from scenery.search import (
    Hit,
    fetch_image,
    reorder,
    search_image,
    search_text,
    similar_images,
)
from scenery.tags import tag_names
from web.services import (
    SORTS,
    BadRequest,
    context,
    db,
    int_arg,
    sort_arg,
    tag_vocabulary,
    uploaded_image,
)
from web.urls import original_url, page_url, reddit_url, thumb_url

bp = Blueprint("api", __name__)


def image_json(image: Image) -> dict[str, Any]:
    """The public fields of a published image."""
    source: dict[str, Any] = {"kind": image.source}
    if image.source == "reddit":
        source.update(
            subreddit=image.reddit_subreddit,
            post_id=image.reddit_post_id,
            author=image.reddit_author,
            title=image.reddit_title,
            url=reddit_url(image),
            created_at=isoformat(image.reddit_created_at),
        )
    return {
        "id": image.id,
        "title": image.display_title,
        "orientation": orientation_of(image.width, image.height),
        "color": image.colour,
        "tags": tag_names(image.tags),
        "subreddit": image.reddit_subreddit or LOCAL,
        "url": original_url(image, external=True),
        "thumb_url": thumb_url(image, 400, external=True),
        "large_url": thumb_url(image, 1600, external=True),
        "page_url": page_url(image, external=True),
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "bytes": image.bytes,
        "published_at": isoformat(image.published_at),
        "source": source,
    }


def hits_json(hits: list[Hit]) -> list[dict[str, Any]]:
    return [{**image_json(hit.image), "score": round(hit.score, 6)} for hit in hits]


def known_source(name: str) -> None:
    """Refuse a subreddit the gallery holds nothing from, naming those it does."""
    sources = published_sources(db())
    if name.lower() not in {source.lower() for source in sources}:
        listed = ", ".join(f"{source} ({n})" for source, n in sources.items()) or "none yet"
        raise BadRequest(f"no published images from {name!r}; sources: {listed}")


def _k() -> int:
    settings = context().settings
    return int_arg("k", settings.search_k, 1, settings.max_k)


@bp.get("/api/images")
def list_images() -> dict[str, Any]:
    settings = context().settings
    page = int_arg("page", 1, 1, 1_000_000)
    per_page = int_arg("per_page", settings.page_size, 1, settings.max_k)
    chosen = parse_filter(request.args, tag_vocabulary())
    where = chosen.conditions(settings.fit_crop_tolerance)
    sort, seed = sort_arg("newest", ("newest", "random"))
    shuffle = seed if sort == "random" else None
    images, total = published_page(db(), page, per_page, where, shuffle)
    if not total and chosen.subreddit is not None:
        known_source(chosen.subreddit)
    return {
        "page": page,
        "per_page": per_page,
        "filters": chosen.params(),
        "sort": sort,
        **({"seed": seed} if sort == "random" else {}),
        "total": total,
        "pages": max(1, math.ceil(total / per_page)),
        "images": [image_json(image) for image in images],
    }


@bp.get("/api/images/<int:image_id>")
def show_image(image_id: int) -> dict[str, Any]:
    return image_json(get_image(db(), image_id))


def _filtered() -> tuple[ImageFilter, list[ColumnElement[bool]], int]:
    """The filter in the request's parameters (query string or form), its SQL conditions and
    the page of results asked for."""
    chosen = parse_filter(request.values, tag_vocabulary())
    where = chosen.conditions(context().settings.fit_crop_tolerance)
    return chosen, where, int_arg("page", 1, 1, 1000)


def _results(hits: list[Hit], chosen: ImageFilter, k: int, page: int) -> dict[str, Any]:
    if not hits and chosen.subreddit is not None:
        known_source(chosen.subreddit)
    return {"k": k, "page": page, "filters": chosen.params(), "results": hits_json(hits)}


def _sorted_search(run: Callable[[int, int], list[Hit]], k: int, page: int) -> dict[str, Any]:
    """``run(k, page)`` ranked by relevance (the default), or its best ``max_k`` in the order
    ``sort`` asks for (newest, random with ``seed``), paged."""
    sort, seed = sort_arg("relevance", SORTS)
    if sort == "relevance":
        return {"sort": sort, "hits": run(k, page)}
    pool = reorder(run(context().settings.max_k, 1), sort, seed)
    hits = pool[(page - 1) * k : page * k]
    return {"sort": sort, "hits": hits, **({"seed": seed} if sort == "random" else {})}


@bp.get("/api/images/<int:image_id>/similar")
def similar(image_id: int) -> dict[str, Any]:
    """Nearest published images, by CLIP (``by=clip``, the default) or by colour
    (``by=color``); the image itself is never among the results."""
    ctx = context()
    chosen, where, page = _filtered()
    k = _k()
    by = request.args.get("by", "clip")
    if by == "color":
        hits = similar_colours(db(), image_id, k, where, page)
    elif by == "clip":
        ef = ctx.settings.index_ef_search
        hits = similar_images(db(), ctx.index, image_id, k, ef, where, page)
    else:
        raise BadRequest(f"unknown by {by!r}: use one of clip, color")
    return {"image_id": image_id, "by": by, **_results(hits, chosen, k, page)}


@bp.get("/api/search")
def search() -> dict[str, Any]:
    ctx = context()
    query = request.args.get("q", "").strip()
    if not query:
        raise BadRequest("q is required")
    if len(query) > 300:
        raise BadRequest("q is longer than 300 characters")
    chosen, where, page = _filtered()
    k = _k()
    candidates = ctx.settings.index_text_candidates

    def run(n: int, at: int) -> list[Hit]:
        return search_text(db(), ctx.index, ctx.text_queries, query, n, candidates, where, at)

    found = _sorted_search(run, k, page)
    hits = found.pop("hits")
    return {"query": query, **found, **_results(hits, chosen, k, page)}


@bp.post("/api/search/image")
def search_by_image() -> dict[str, Any]:
    chosen, where, page = _filtered()
    return _by_image(uploaded_image().image, chosen, where, page)


@bp.get("/api/search/url")
def search_by_url() -> dict[str, Any]:
    """Search by an image on the web: the server fetches ``url`` (public addresses only, the
    upload size limit, images only) and searches by it, as an upload would."""
    ctx = context()
    url = request.args.get("url", "").strip()
    if not url:
        raise BadRequest("url is required")
    chosen, where, page = _filtered()
    image = fetch_image(ctx.fetcher, url, ImageLimits.from_settings(ctx.settings))
    return {"url": url, **_by_image(image, chosen, where, page)}


def _by_image(
    image: PILImage.Image, chosen: ImageFilter, where: list[ColumnElement[bool]], page: int
) -> dict[str, Any]:
    """The response of a search by a picture (uploaded or fetched)."""
    ctx = context()
    k = _k()
    ef = ctx.settings.index_ef_search

    def run(n: int, at: int) -> list[Hit]:
        return search_image(db(), ctx.index, ctx.embedder, image, n, ef, where, at)

    found = _sorted_search(run, k, page)
    hits = found.pop("hits")
    return {**found, **_results(hits, chosen, k, page)}


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "images": count_published(db())}
