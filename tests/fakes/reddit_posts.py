"""Builders for Reddit-shaped post dicts and listings, and loaders for the recorded fixtures."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from ingest.reddit import Post

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reddit"
BASE_CREATED = 1_717_000_000  # 2024-05-29 16:26:40 UTC


def make_post(
    id: str = "1d3abc9", subreddit: str = "EarthPorn", url: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """Return a link post's ``data`` object with the fields a real listing carries."""
    url = url or f"https://i.redd.it/{id}x0example.jpg"
    created = overrides.pop("created_utc", BASE_CREATED)
    slug = "golden_hour_over_the_dolomites_oc_4000x6000"
    data: dict[str, Any] = {
        "approved_at_utc": None,
        "subreddit": subreddit,
        "selftext": "",
        "author_fullname": "t2_8k2j1x9q",
        "saved": False,
        "gilded": 0,
        "clicked": False,
        "title": "Golden hour over the Dolomites [OC] [4000x6000]",
        "link_flair_richtext": [],
        "subreddit_name_prefixed": f"r/{subreddit}",
        "hidden": False,
        "pwls": 6,
        "link_flair_css_class": None,
        "downs": 0,
        "thumbnail_height": 140,
        "top_awarded_type": None,
        "hide_score": False,
        "name": f"t3_{id}",
        "quarantine": False,
        "link_flair_text_color": "dark",
        "upvote_ratio": 0.97,
        "author_flair_background_color": None,
        "subreddit_type": "public",
        "ups": 1234,
        "total_awards_received": 0,
        "media_embed": {},
        "thumbnail_width": 140,
        "author_flair_template_id": None,
        "is_original_content": False,
        "user_reports": [],
        "secure_media": None,
        "is_reddit_media_domain": True,
        "is_meta": False,
        "category": None,
        "secure_media_embed": {},
        "link_flair_text": None,
        "can_mod_post": False,
        "score": 1234,
        "approved_by": None,
        "is_created_from_ads_ui": False,
        "author_premium": False,
        "thumbnail": f"https://b.thumbs.redditmedia.com/{id}thumb.jpg",
        "edited": False,
        "author_flair_css_class": None,
        "author_flair_richtext": [],
        "gildings": {},
        "post_hint": "image",
        "content_categories": ["photography"],
        "is_self": False,
        "created": created,
        "link_flair_type": "text",
        "wls": 6,
        "removed_by_category": None,
        "banned_by": None,
        "author_flair_type": "text",
        "domain": "i.redd.it",
        "allow_live_comments": False,
        "selftext_html": None,
        "likes": None,
        "suggested_sort": None,
        "banned_at_utc": None,
        "url_overridden_by_dest": url,
        "view_count": None,
        "archived": False,
        "no_follow": False,
        "is_crosspostable": True,
        "pinned": False,
        "over_18": False,
        "all_awardings": [],
        "awarders": [],
        "media_only": False,
        "can_gild": False,
        "spoiler": False,
        "locked": False,
        "author_flair_text": None,
        "treatment_tags": [],
        "visited": False,
        "removed_by": None,
        "mod_note": None,
        "distinguished": None,
        "subreddit_id": "t5_2sbq3",
        "author_is_blocked": False,
        "mod_reason_by": None,
        "num_reports": None,
        "removal_reason": None,
        "link_flair_background_color": "",
        "id": id,
        "is_robot_indexable": True,
        "report_reasons": None,
        "author": "alpine_lens",
        "discussion_type": None,
        "num_comments": 42,
        "send_replies": True,
        "contest_mode": False,
        "mod_reports": [],
        "author_patreon_flair": False,
        "author_flair_text_color": None,
        "permalink": f"/r/{subreddit}/comments/{id}/{slug}/",
        "stickied": False,
        "url": url,
        "subreddit_subscribers": 23_456_789,
        "created_utc": created,
        "num_crossposts": 0,
        "media": None,
        "is_video": False,
    }
    data.update(overrides)
    return data


def preview(url: str, width: int, height: int, image_id: str = "pv1") -> dict[str, Any]:
    """Return a ``preview`` object as Reddit sends it, its source URL exactly as given."""
    small = f"{url}&width=640" if "?" in url else f"{url}?width=640"
    return {
        "images": [
            {
                "source": {"url": url, "width": width, "height": height},
                "resolutions": [{"url": small, "width": 640, "height": height * 640 // width}],
                "variants": {},
                "id": image_id,
            }
        ],
        "enabled": True,
    }


def gallery_item(media_id: str, width: int, height: int, mime: str = "image/jpg") -> dict[str, Any]:
    """Return one valid ``media_metadata`` entry (URLs HTML-escaped, as without raw_json=1)."""
    ext = mime.rsplit("/", 1)[-1]
    base = f"https://preview.redd.it/{media_id}.{ext}"
    return {
        "status": "valid",
        "e": "Image",
        "m": mime,
        "p": [
            {"y": 72, "x": 108, "u": f"{base}?width=108&amp;crop=smart&amp;auto=webp&amp;s=1a"},
            {"y": 432, "x": 640, "u": f"{base}?width=640&amp;crop=smart&amp;auto=webp&amp;s=2b"},
        ],
        "s": {"y": height, "x": width, "u": f"{base}?width={width}&amp;format=pjpg&amp;s=3c"},
        "id": media_id,
    }


def make_gallery_post(
    id: str, items: list[tuple[str, dict[str, Any]]], **overrides: Any
) -> dict[str, Any]:
    """Return a gallery post; ``items`` are (media_id, media_metadata entry) in gallery order."""
    gallery_url = f"https://www.reddit.com/gallery/{id}"
    return make_post(
        id=id,
        url=gallery_url,
        domain="reddit.com",
        is_gallery=True,
        post_hint=None,
        gallery_data={
            "items": [{"media_id": mid, "id": 400_000 + n} for n, (mid, _) in enumerate(items)]
        },
        media_metadata=dict(items),
        thumbnail="https://b.thumbs.redditmedia.com/gallery.jpg",
        **overrides,
    )


def make_crosspost(id: str, parent: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Return a crosspost of ``parent`` into another subreddit."""
    permalink = parent["permalink"]
    fields: dict[str, Any] = {
        "url": permalink,
        "url_overridden_by_dest": permalink,
        "domain": parent["domain"],
        "post_hint": None,
        "crosspost_parent": parent["name"],
        "crosspost_parent_list": [parent],
        "title": f"x-post: {parent['title']}",
    }
    fields.update(overrides)
    return make_post(id=id, subreddit=fields.pop("subreddit", "pics"), **fields)


def listing(posts: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    """Wrap post data objects in Reddit's listing envelope."""
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": len(posts),
            "modhash": "",
            "geo_filter": None,
            "children": [{"kind": "t3", "data": post} for post in posts],
            "before": None,
        },
    }


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def load_listing(name: str) -> dict[str, Any]:
    """Return a fresh copy of a recorded-shape listing from tests/fixtures/reddit/<name>.json."""
    return copy.deepcopy(_load(name))


def fixture_data(name: str) -> dict[str, Any]:
    """Return the first post's ``data`` of a fixture listing (a fresh, editable copy)."""
    return load_listing(name)["data"]["children"][0]["data"]


def fixture_post(name: str) -> Post:
    """Return the first post of a fixture listing as a ``Post``."""
    return Post.from_listing_child(load_listing(name)["data"]["children"][0])


def as_post(data: dict[str, Any]) -> Post:
    """Wrap a post ``data`` dict as a ``Post``."""
    return Post.from_listing_child({"kind": "t3", "data": data})
