"""The owner's pages under /admin: every view needs a logged-in admin."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _require_login() -> Any:
    if not current_user.is_authenticated:
        if wants_json():
            return jsonify(error="login required"), 401
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return None


def wants_json() -> bool:
    """Requests from the admin script ask for JSON; plain form posts get a redirect back."""
    return request.accept_mimetypes.best == "application/json"


def back(default: str) -> Response:
    """Redirect to the page the form came from (same site only), else ``default``."""
    target = request.form.get("back", "")
    if target.startswith("/admin") and not target.startswith("//"):
        return redirect(target)
    return redirect(default)


from web.admin import dashboard, library, queue, subscriptions  # noqa: E402, F401
