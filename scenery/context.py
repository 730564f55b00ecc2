"""One process's wiring: settings, database, storage, embedder and the synced vector index."""

from __future__ import annotations

import re
import threading
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from scenery.config import Settings
from scenery.db import make_engine, make_sessionmaker, migrate
from scenery.embed import Embedder, load_embedder
from scenery.fetch import Fetcher
from scenery.index_sync import SyncedIndex
from scenery.query_cache import TextQueryCache
from scenery.queue import TaskQueue
from scenery.storage import Storage
from scenery.tags import DEFAULT_VOCABULARY, Tagger
from scenery.vector_space import INT8_SUFFIX, refuse_other_runtime


class Context:
    """Built once per process (CLI command, web app, worker) and passed to whatever needs it."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.engine: Engine = make_engine(settings.db_url)
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.storage = Storage(settings.root)
        self._embedder = embedder
        self._index_lock = threading.Lock()
        self._index: SyncedIndex | None = None

    def migrate(self) -> None:
        """Apply database migrations."""
        migrate(self.engine, self.settings.root)

    @cached_property
    def queue(self) -> TaskQueue:
        """The deployment's task queue (a file in the data dir, or Redis)."""
        return TaskQueue(self.settings)

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or load_embedder(self.settings)

    @cached_property
    def quadrant_embedder(self) -> Embedder:
        """What the watermark detector's four quadrant views go through: the int8 ONNX image
        tower of the settings' model (about twice as fast), unless SCENERY_WATERMARK_INT8 is
        off, the main model is int8 already, or an embedder was handed in (then that one)."""
        if (
            self._embedder is not None
            or not self.settings.watermark_int8
            or self.embedder.name.endswith(INT8_SUFFIX)
        ):
            return self.embedder
        from scenery.onnx_embed import OnnxClipEmbedder

        return OnnxClipEmbedder.from_settings(self.settings, int8=True, towers=("image",))

    @cached_property
    def tagger(self) -> Tagger | None:
        """The auto tagger of this embedder and vocabulary; None when auto tags are off."""
        if not self.settings.auto_tags:
            return None
        path = self.settings.tag_vocabulary or DEFAULT_VOCABULARY
        return Tagger(self.embedder, path, self.settings.tag_min_probability)

    @cached_property
    def fetcher(self) -> Fetcher:
        """The SSRF-guarded downloader for fetches made on a visitor's behalf (search by URL):
        public addresses only, and no larger than an upload may be."""
        limit = min(self.settings.download_max_bytes, self.settings.max_upload_bytes)
        return Fetcher(self.settings.model_copy(update={"download_max_bytes": limit}))

    @cached_property
    def text_queries(self) -> TextQueryCache:
        """Text query embeddings, cached for this process."""
        return TextQueryCache(
            self.embedder, self.settings.query_cache_size, self.settings.index_text_gap_strength
        )

    @property
    def index(self) -> SyncedIndex:
        """The vector index of the embedder's space, opened (and caught up) on first use."""
        with self._index_lock:
            if self._index is None:
                with self.sessions() as session:
                    refuse_other_runtime(session, self.embedder.name)
                self._index = SyncedIndex(
                    self.settings.index_dir / _slug(self.embedder.name),
                    self.embedder.name,
                    self.embedder.dim,
                    self.sessions,
                    m=self.settings.index_m,
                    ef_construction=self.settings.index_ef_construction,
                    refresh_seconds=self.settings.index_refresh_seconds,
                ).open()
            return self._index

    def close(self) -> None:
        if "queue" in self.__dict__:
            self.queue.huey.storage.close()
        if "fetcher" in self.__dict__:
            self.fetcher.close()
        self.engine.dispose()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name)
