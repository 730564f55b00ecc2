"""WSGI entry point for production servers: ``gunicorn -c python:scenery.serving 'web.wsgi:app'``
(what ``scenery serve --prod`` runs; see scenery/serving.py)."""

from __future__ import annotations

from scenery.config import load_settings
from web import create_app, warm_up


def _threads_are_greenlets() -> bool:
    """Whether gevent has patched this process (gunicorn's gevent worker has, by now)."""
    from gevent import monkey

    return bool(monkey.is_module_patched("threading"))


settings = load_settings()
if settings.warm_up and _threads_are_greenlets():
    # A background "thread" would be a greenlet holding the worker's only thread for as long
    # as the model loads, serving nobody meanwhile: load it now, before the worker accepts a
    # connection (scenery.serving keeps gunicorn's heartbeat while it does).
    app = create_app(settings.model_copy(update={"warm_up": False}))
    warm_up(app.extensions["scenery"])
else:
    app = create_app(settings)
