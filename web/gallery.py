"""HTML pages: the grid of newest images, image pages, text search and search by image."""

from __future__ import annotations

import math

from flask import Blueprint, render_template, request

from scenery.errors import NotFound
from scenery.library import get_image, published_page
from scenery.search import search_image, search_text, similar_images
from web.services import context, db, int_arg, uploaded_image

bp = Blueprint("gallery", __name__)

SIMILAR_ON_PAGE = 12


@bp.get("/")
def home() -> str:
    per_page = context().settings.page_size
    page = int_arg("page", 1, 1, 1_000_000)
    images, total = published_page(db(), page, per_page)
    pages = max(1, math.ceil(total / per_page))
    if page > pages:
        raise NotFound(f"there is no page {page}")
    return render_template("home.html", images=images, page=page, pages=pages, total=total)


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
    return render_template("image.html", image=image, similar=similar)


@bp.get("/search")
def search() -> str:
    ctx = context()
    query = request.args.get("q", "").strip()
    k = int_arg("k", ctx.settings.search_k, 1, ctx.settings.max_k)
    hits = []
    if query:
        hits = search_text(
            db(), ctx.index, ctx.text_queries, query[:300], k, ctx.settings.index_text_candidates
        )
    return render_template("search.html", query=query, hits=hits)


@bp.route("/search/image", methods=["GET", "POST"])
def search_by_image() -> str:
    ctx = context()
    if request.method == "GET":
        return render_template("search_image.html", hits=None)
    decoded = uploaded_image()
    hits = search_image(
        db(),
        ctx.index,
        ctx.embedder,
        decoded.image,
        ctx.settings.search_k,
        ctx.settings.index_ef_search,
    )
    return render_template("search_image.html", hits=hits)
