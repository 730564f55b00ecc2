"""Keeps a persisted VectorIndex in step with the database's published images.

Every change of an image's visibility appends a ``PublicationEvent``. An index snapshot records
the highest event id it reflects; opening it replays newer events, and a running process calls
``refresh`` to replay them every few seconds. Replay is idempotent: an event only names an image,
whose current status and embedding decide whether it belongs in the index (and which vector:
a vector that differs from the stored embedding is replaced).

PostgreSQL hands out ids before commit, so an event can become visible below the watermark.
Ids below the watermark that were not seen yet (gaps) are remembered and asked for again on
every catch-up, until they appear or ``GAP_SECONDS`` pass on this process's own clock (a
rolled-back transaction's id never appears). Nothing compares clocks of different machines.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from scenery.batches import chunked
from scenery.errors import IndexMismatch
from scenery.index import VectorIndex
from scenery.models import Embedding, Image, ImageStatus, PublicationEvent

log = logging.getLogger(__name__)

GAP_SECONDS = 3600.0  # how long an unseen id below the watermark is waited for
GAP_WINDOW = 1_000  # on a rebuild, ids this far below the newest are checked for gaps
CHUNK = 500
KEEP_SNAPSHOTS = 2
PRUNE_GRACE_SECONDS = 60.0


class SyncedIndex:
    """A VectorIndex of one embedding model's published images, persisted under ``directory``."""

    def __init__(
        self,
        directory: Path,
        model: str,
        dim: int,
        sessions: sessionmaker[Session],
        *,
        m: int = 16,
        ef_construction: int = 200,
        refresh_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.model = model
        self.dim = dim
        self.sessions = sessions
        self.m = m
        self.ef_construction = ef_construction
        self.refresh_seconds = refresh_seconds
        self.index = VectorIndex(dim, m=m, ef_construction=ef_construction)
        self.watermark = 0
        self.gaps: dict[int, float] = {}  # unseen event id below the watermark -> noticed at
        self.synced_at = datetime.fromtimestamp(0, UTC)
        self._clock = clock
        self._checked = -float("inf")
        self._lock = threading.Lock()
        self.text_shift: np.ndarray | None = None  # kept across rebuilds (scenery.modality_gap)

    def use_text_shift(self, shift: np.ndarray) -> bool:
        """Steer text queries with ``shift`` from now on; whether it had to be registered now
        (one read of every stored vector, which a saved snapshot then spares other processes)."""
        with self._lock:
            self.text_shift = shift
            if self.index.same_shift(shift):
                return False
            log.info("registering the text query shift on %d vectors", len(self.index))
            self.index.set_query_shift(shift)
            return True

    # -- opening and persistence -------------------------------------------------------------

    def open(self) -> SyncedIndex:
        """Load the newest snapshot (or rebuild from the database), then catch up."""
        with self._lock:
            if not self._load_snapshot():
                self._rebuild_locked()
            else:
                self._catch_up_locked()
        return self

    def _load_snapshot(self) -> bool:
        current = self.directory / "CURRENT"
        if not current.exists():
            return False
        snapshot = self.directory / current.read_text().strip()
        try:
            meta = json.loads((snapshot / "meta.json").read_text())
            if meta["model"] != self.model or meta["dim"] != self.dim:
                raise IndexMismatch(f"snapshot is for {meta['model']} ({meta['dim']}-d)")
            index = VectorIndex.load(
                snapshot, self.dim, m=self.m, ef_construction=self.ef_construction
            )
        except (OSError, ValueError, KeyError, IndexMismatch) as exc:
            log.warning("ignoring index snapshot %s: %s; rebuilding", snapshot, exc)
            return False
        with self.sessions() as session:
            newest = session.scalar(select(func.max(PublicationEvent.id))) or 0
        if meta["watermark"] > newest:
            log.warning("index snapshot is ahead of the database; rebuilding")
            return False
        if self.text_shift is not None and not index.same_shift(self.text_shift):
            index.set_query_shift(self.text_shift)
        self.index = index
        self.watermark = int(meta["watermark"])
        now = self._clock()
        self.gaps = {int(i): now for i in meta.get("gaps", [])}
        self.synced_at = datetime.fromisoformat(meta["synced_at"])
        self._checked = now
        log.info("loaded index snapshot %s with %d images", snapshot.name, len(index))
        return True

    def save(self) -> Path:
        """Write a new snapshot atomically and point CURRENT at it."""
        with self._lock:
            name = f"snap-{int(time.time())}-{uuid.uuid4().hex[:8]}"
            snapshot = self.directory / name
            self.index.save(snapshot)
            meta = {
                "model": self.model,
                "dim": self.dim,
                "watermark": self.watermark,
                "gaps": sorted(self.gaps),
                "synced_at": self.synced_at.isoformat(),
                "count": len(self.index),
                "saved_at": datetime.now(UTC).isoformat(),
            }
            (snapshot / "meta.json").write_text(json.dumps(meta, indent=2))
            tmp = self.directory / f".CURRENT.{uuid.uuid4().hex[:8]}"
            tmp.write_text(name)
            tmp.replace(self.directory / "CURRENT")
            self._prune(keep=name)
            return snapshot

    def _prune(self, keep: str) -> None:
        """Delete old snapshots, keeping CURRENT's, the newest other one, and any younger than
        ``PRUNE_GRACE_SECONDS`` (another process may be about to point CURRENT at it)."""
        others = sorted(
            (p for p in self.directory.glob("snap-*") if p.is_dir() and p.name != keep),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        cutoff = time.time() - PRUNE_GRACE_SECONDS
        for old in others[KEEP_SNAPSHOTS - 1 :]:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)

    # -- rebuilding and catching up -----------------------------------------------------------

    def rebuild(self) -> int:
        """Build the index afresh from every published image's embedding."""
        with self._lock:
            return self._rebuild_locked()

    def _rebuild_locked(self) -> int:
        started = datetime.now(UTC)
        with self.sessions() as session:
            watermark = session.scalar(select(func.max(PublicationEvent.id))) or 0
            total = session.scalar(
                select(func.count())
                .select_from(Embedding)
                .join(Image, Image.id == Embedding.image_id)
                .where(Embedding.model == self.model, Image.status == ImageStatus.PUBLISHED)
            )
            index = VectorIndex(
                self.dim, m=self.m, ef_construction=self.ef_construction, capacity=total or 0
            )
            if self.text_shift is not None:  # empty now: each add then records its dots
                index.set_query_shift(self.text_shift)
            for ids, vectors in self._published_vectors(session, None):
                index.add(ids, vectors)
            seen = session.scalars(
                select(PublicationEvent.id).where(PublicationEvent.id > watermark - GAP_WINDOW)
            ).all()
        now = self._clock()
        self.index, self.watermark, self.synced_at = index, int(watermark), started
        self.gaps = {}
        self._note_gaps(max(0, watermark - GAP_WINDOW), int(watermark), set(seen), now)
        self._checked = now
        log.info("rebuilt index of %s with %d images", self.model, len(index))
        return len(index)

    def _published_vectors(
        self, session: Session, image_ids: Iterable[int] | None
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        query = (
            select(Embedding.image_id, Embedding.vector)
            .join(Image, Image.id == Embedding.image_id)
            .where(Embedding.model == self.model, Image.status == ImageStatus.PUBLISHED)
            .order_by(Embedding.image_id)
        )
        chunks = [None] if image_ids is None else chunked(sorted(image_ids), CHUNK)
        for chunk in chunks:
            scoped = query if chunk is None else query.where(Embedding.image_id.in_(chunk))
            rows = session.execute(scoped.execution_options(yield_per=5000))
            for batch in rows.partitions(5000):
                ids = [row[0] for row in batch]
                vectors = np.frombuffer(b"".join(row[1] for row in batch), np.float32)
                yield ids, vectors.reshape(len(ids), self.dim)

    def catch_up(self) -> int:
        """Replay publication events newer than the snapshot; return how many images changed."""
        with self._lock:
            return self._catch_up_locked()

    def _catch_up_locked(self) -> int:
        started = datetime.now(UTC)
        now = self._clock()
        with self.sessions() as session:
            events = self._new_events(session)
            if not events:
                self._expire_gaps(now)
                self.synced_at = started
                return 0
            touched = {image_id for _, image_id in events}
            present: set[int] = set()
            changed = 0
            for ids, vectors in self._published_vectors(session, touched):
                stale = self._stale(ids, vectors)
                if stale.any():
                    self.index.add(
                        [i for i, s in zip(ids, stale, strict=True) if s], vectors[stale]
                    )
                    changed += int(stale.sum())
                present.update(ids)
        gone = [i for i in touched - present if i in self.index]
        self.index.remove(gone)
        seen = {event_id for event_id, _ in events}
        top = max(seen)
        for event_id in seen:
            self.gaps.pop(event_id, None)
        if top > self.watermark:
            self._note_gaps(self.watermark, top, seen, now)
            self.watermark = top
        self._expire_gaps(now)
        self.synced_at = started
        changed += len(gone)
        if changed:
            log.info("index caught up: %d images changed", changed)
        return changed

    def _new_events(self, session: Session) -> list[tuple[int, int]]:
        """Events above the watermark, and those that filled a gap below it."""
        newer = PublicationEvent.id > self.watermark
        if not self.gaps:
            wanted = newer
        elif len(self.gaps) <= CHUNK:
            wanted = or_(newer, PublicationEvent.id.in_(sorted(self.gaps)))
        else:  # many gaps (rollbacks): one range, filtered here
            wanted = PublicationEvent.id >= min(self.gaps)
        rows = session.execute(select(PublicationEvent.id, PublicationEvent.image_id).where(wanted))
        return [
            (event_id, image_id)
            for event_id, image_id in rows
            if event_id > self.watermark or event_id in self.gaps
        ]

    def _stale(self, ids: list[int], vectors: np.ndarray) -> np.ndarray:
        """Which of these published vectors the index lacks or holds differently (an id that
        a rolled-back transaction used first, on SQLite)."""
        held = [n for n, i in enumerate(ids) if i in self.index]
        stale = np.ones(len(ids), dtype=bool)
        if held:
            current = self.index.get_vectors([ids[n] for n in held])
            same = np.all(np.isclose(current, vectors[held], atol=1e-5), axis=1)
            stale[held] = ~same
        return stale

    def _note_gaps(self, low: int, high: int, seen: set[int], now: float) -> None:
        """Remember the ids in (low, high) not among ``seen``: they may still commit."""
        for event_id in range(low + 1, high):
            if event_id not in seen:
                self.gaps.setdefault(event_id, now)

    def _expire_gaps(self, now: float) -> None:
        for event_id, noticed in list(self.gaps.items()):
            if now - noticed > GAP_SECONDS:
                del self.gaps[event_id]

    def refresh(self, force: bool = False) -> int:
        """Catch up if ``refresh_seconds`` have passed since the last check (or ``force``)."""
        now = self._clock()
        if not force and now - self._checked < self.refresh_seconds:
            return 0
        if not self._lock.acquire(blocking=force):
            return 0  # another thread is catching up right now
        try:
            self._checked = now
            return self._catch_up_locked()
        finally:
            self._lock.release()

    # -- direct updates from this process ------------------------------------------------------

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        """Add images this process has just published (their events replay as no-ops)."""
        self.index.add(ids, vectors)

    def remove(self, ids: Iterable[int]) -> None:
        """Drop images this process has just unpublished."""
        self.index.remove(ids)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.index
