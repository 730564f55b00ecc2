"""HTML pages: the grid of newest images, image pages, text search and search by image."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request, url_for
from sqlalchemy import ColumnElement

from scenery.colour_search import similar_colours
from scenery.errors import NotFound
from scenery.image_filters import ImageFilter, parse_filter
from scenery.imaging import ImageLimits
from scenery.library import get_image, published_page, tag_counts
from scenery.search import fetch_image, reorder, search_image, search_text, similar_images
from web.services import (
    SORTS,
    context,
    db,
    int_arg,
    sort_arg,
    source_counts,
    tag_vocabulary,
    uploaded_image,
)

bp = Blueprint("gallery", __name__)

SIMILAR_ON_PAGE = 12


LABELS = {
    "orientation": "",
    "size": "",
    "min_width": "width \u2265 ",
    "min_height": "height \u2265 ",
    "min_megapixels": "megapixels \u2265 ",
    "fits": "fits ",
    "color": "",
    "subreddit": "from ",
    "added_after": "added since ",
    "added_before": "added until ",
    "posted_after": "posted since ",
    "posted_before": "posted until ",
    "tag": "#",
}


@dataclass(frozen=True)
class Chip:
    """An applied filter as the page shows it, with the address of the page without it."""

    name: str
    label: str
    remove: str


def chips(chosen: ImageFilter, endpoint: str, **keep: str) -> list[Chip]:
    """One removable chip per applied filter; ``keep``: the other parameters the page holds."""
    params = chosen.params()
    out = []
    for name, value in params.items():
        for one in value if isinstance(value, list) else [value]:
            rest: dict[str, Any] = {k: v for k, v in params.items() if k != name}
            if isinstance(value, list) and len(value) > 1:
                rest[name] = [v for v in value if v != one]
            label = f"{LABELS.get(name, name + ' ')}{one}"
            values: dict[str, Any] = {**keep, **rest}
            out.append(Chip(name, label, url_for(endpoint, **values)))
    return out


def _chosen() -> tuple[ImageFilter, list[ColumnElement[bool]]]:
    chosen = parse_filter(request.args, tag_vocabulary())
    return chosen, chosen.conditions(context().settings.fit_crop_tolerance)


@bp.get("/")
def home() -> str:
    per_page = context().settings.page_size
    page = int_arg("page", 1, 1, 1_000_000)
    chosen, where = _chosen()
    sort, seed = sort_arg("newest", ("newest", "random"))
    shuffle = seed if sort == "random" else None
    images, total = published_page(db(), page, per_page, where, shuffle)
    pages = max(1, math.ceil(total / per_page))
    if page > pages and total:
        raise NotFound(f"there is no page {page}")
    order = _order(sort, seed, "newest")
    return render_template(
        "home.html",
        images=images,
        page=page,
        pages=pages,
        total=total,
        filters=chosen.params(),
        order=order,
        carry={**chosen.params(), **order},
        sources=source_counts(),
        sort=sort,
        sorts=("newest", "random"),
        chips=chips(chosen, "gallery.home", **order),
    )


def _order(sort: str, seed: int, default: str) -> dict[str, str]:
    """The sort parameters a page's links carry (none for the default order)."""
    if sort == default:
        return {}
    return {"sort": sort, **({"seed": str(seed)} if sort == "random" else {})}


@bp.get("/tags")
def tags() -> str:
    """Every tag of the vocabulary with how many published photos carry it."""
    counts = tag_counts(db())
    listed = [(name, counts.get(name, 0)) for name in tag_vocabulary()]
    return render_template("tags.html", tags=listed)


@bp.get("/image/<int:image_id>")
def image_page(image_id: int) -> str:
    ctx = context()
    image = get_image(db(), image_id)
    try:
        similar = similar_images(
            db(), ctx.index, image_id, SIMILAR_ON_PAGE, ctx.settings.index_ef_search
        )
    except NotFound:  # no embedding for the current model yet: the page still shows
        similar = []
    colours = similar_colours(db(), image_id, SIMILAR_ON_PAGE)
    return render_template("image.html", image=image, similar=similar, colours=colours)


@bp.get("/search")
def search() -> str:
    ctx = context()
    query = request.args.get("q", "").strip()[:300]
    k = int_arg("k", ctx.settings.search_k, 1, ctx.settings.max_k)
    chosen, where = _chosen()
    sort, seed = sort_arg("relevance", SORTS)
    hits = []
    if query:
        candidates = ctx.settings.index_text_candidates
        wanted = k if sort == "relevance" else ctx.settings.max_k
        hits = search_text(db(), ctx.index, ctx.text_queries, query, wanted, candidates, where)
        hits = reorder(hits, sort, seed)[:k]
    order = _order(sort, seed, "relevance")
    return render_template(
        "search.html",
        query=query,
        hits=hits,
        filters=chosen.params(),
        order=order,
        sort=sort,
        sorts=SORTS,
        sources=source_counts(),
        chips=chips(chosen, "gallery.search", q=query, **order),
    )


@bp.route("/search/image", methods=["GET", "POST"])
def search_by_image() -> str:
    ctx = context()
    url = request.args.get("url", "").strip()
    chosen, where = _chosen()  # from the query string, for the upload form too
    shown = {
        "url": url,
        "filters": chosen.params(),
        "chips": chips(chosen, "gallery.search_by_image"),
    }
    if request.method == "GET" and not url:
        return render_template("search_image.html", hits=None, **shown)
    if request.method == "GET":
        image = fetch_image(ctx.fetcher, url, ImageLimits.from_settings(ctx.settings))
    else:
        image = uploaded_image().image
    k, ef = ctx.settings.search_k, ctx.settings.index_ef_search
    hits = search_image(db(), ctx.index, ctx.embedder, image, k, ef, where)
    return render_template("search_image.html", hits=hits, **shown)
