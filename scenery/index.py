"""VectorIndex: an HNSW graph (hnswlib) of L2-normalised vectors keyed by image id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import hnswlib
import numpy as np

from scenery.errors import IndexMismatch

MIN_CAPACITY = 1024
# Shifts this close are one: the same prompts through torch and ONNX differ by ~1e-7.
SHIFT_TOLERANCE = 1e-5


class VectorIndex:
    """Inner-product HNSW search over unit vectors; thread-safe, grows as needed.

    Scores are cosine similarities (1 - hnswlib's inner-product distance). Removal marks a label
    deleted at once; ``compact`` rebuilds the graph when deleted slots pile up.

    A query shift (``set_query_shift``) lets ``query_shifted`` steer the graph search with
    ``query + shift`` yet score by ``query`` alone: the index keeps ``shift . x`` for every stored
    vector, and ``query . x`` is ``(query + shift) . x - shift . x``. See
    ``scenery.modality_gap`` for why.

    Beside the graph it keeps the vectors in a matrix (one row per live id), which scores a
    subset exactly in one product (``exact_among``, for selective filters) and reads vectors
    back far faster than hnswlib's ``get_items``.
    """

    def __init__(
        self, dim: int, *, m: int = 16, ef_construction: int = 200, capacity: int = MIN_CAPACITY
    ) -> None:
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self._lock = threading.RLock()
        self._index = self._new_graph(max(capacity, MIN_CAPACITY))
        self._live: set[int] = set()
        self._deleted: set[int] = set()
        self._shift: np.ndarray | None = None
        self._shift_dots: dict[int, float] = {}
        self._matrix = np.zeros((0, dim), np.float32)  # row r holds the vector of _ids[r]
        self._rows: dict[int, int] = {}  # live id -> its row
        self._free: list[int] = []  # rows of removed ids, reused by the next adds
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # ids, rows: for lookups

    def _new_graph(self, capacity: int) -> hnswlib.Index:
        graph = hnswlib.Index(space="ip", dim=self.dim)
        graph.init_index(max_elements=capacity, M=self.m, ef_construction=self.ef_construction)
        graph.set_num_threads(1)
        return graph

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._live

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self._live)

    @property
    def capacity(self) -> int:
        return int(self._index.get_max_elements())

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Insert or replace vectors under the given ids."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if not len(ids):
            return
        with self._lock:
            needed = self._index.get_current_count() + len(ids)
            if needed > self.capacity:
                self._index.resize_index(max(needed, self.capacity * 2))
            self._index.add_items(vectors, np.asarray(ids, dtype=np.int64), num_threads=1)
            self._mirror(ids, vectors)
            self._live.update(int(i) for i in ids)
            self._deleted.difference_update(int(i) for i in ids)
            if self._shift is not None:
                dots = (vectors @ self._shift).tolist()
                self._shift_dots.update(zip((int(i) for i in ids), dots, strict=True))

    def _mirror(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Copy vectors into the matrix: an id keeps its row, a new one takes a free row."""
        self._sorted = None
        fresh = sum(int(i) not in self._rows for i in ids)
        needed = len(self._rows) + len(self._free) + max(0, fresh - len(self._free))
        if needed > len(self._matrix):
            grown = np.zeros((max(needed, 2 * len(self._matrix), 64), self.dim), np.float32)
            grown[: len(self._matrix)] = self._matrix
            self._matrix = grown
        top = len(self._rows) + len(self._free)
        for image_id, vector in zip(ids, vectors, strict=True):
            row = self._rows.get(int(image_id))
            if row is None:
                if self._free:
                    row = self._free.pop()
                else:
                    row, top = top, top + 1
                self._rows[int(image_id)] = row
            self._matrix[row] = vector

    def remove(self, ids: Iterable[int]) -> None:
        """Take ids out of results at once (unknown ids are ignored)."""
        with self._lock:
            for image_id in ids:
                if image_id in self._live:
                    self._index.mark_deleted(int(image_id))
                    self._live.discard(image_id)
                    self._deleted.add(int(image_id))
                    self._shift_dots.pop(int(image_id), None)
                    self._free.append(self._rows.pop(int(image_id)))
                    self._sorted = None
            if len(self._deleted) > max(MIN_CAPACITY, len(self._live)):
                self.compact()

    def compact(self) -> None:
        """Rebuild the graph from the live vectors, dropping deleted slots."""
        with self._lock:
            ids = sorted(self._live)
            vectors = self.get_vectors(ids)
            self._index = self._new_graph(max(MIN_CAPACITY, 2 * len(ids)))
            self._deleted.clear()
            self._live.clear()
            self._matrix, self._rows, self._free = np.zeros((0, self.dim), np.float32), {}, []
            self._sorted = None
            self.add(ids, vectors)

    def get_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of live ids, in order (KeyError for an id not held)."""
        with self._lock:
            return self._matrix[self._rows_of(ids)]

    def _rows_of(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = self._rows
        return np.fromiter((rows[int(i)] for i in ids), np.int64, len(ids))

    def _held(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ids among ``ids`` this index holds, and their rows (vectorised; the caller
        holds the lock)."""
        if self._sorted is None:
            held = np.fromiter(self._rows, np.int64, len(self._rows))
            rows = np.fromiter(self._rows.values(), np.int64, len(self._rows))
            order = np.argsort(held)
            self._sorted = held[order], rows[order]
        known, rows = self._sorted
        ids = np.asarray(ids, dtype=np.int64)
        if not len(known):
            return ids[:0], ids[:0]
        where = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        found = known[where] == ids
        return ids[found], rows[where[found]]

    def exact_among(
        self, vector: np.ndarray, ids: Sequence[int] | np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` ids among ``ids`` (live ones) with the highest cosine to ``vector``, best
        first, scored exactly; ties go to the lower id."""
        query = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        with self._lock:
            held, rows = self._held(np.asarray(ids, dtype=np.int64))
            scores = self._matrix[rows] @ query
        return best_of(held, scores, k)

    def query(self, vector: np.ndarray, k: int, ef: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Return up to ``k`` (ids, cosine scores) nearest to one vector, best first."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        with self._lock:
            labels, similarities = self._knn(query, k, ef)
        return labels, similarities.astype(np.float32)

    def _knn(self, query: np.ndarray, k: int, ef: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` (labels, inner products) by hnswlib; the caller holds the lock."""
        k = min(k, len(self._live))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ef = max(ef, k)
        while True:
            self._index.set_ef(ef)
            try:
                labels, distances = self._index.knn_query(query, k=k, num_threads=1)
                return labels[0].astype(np.int64), 1.0 - distances[0]
            except RuntimeError:
                # Deleted slots can starve the beam; widen it, then settle for fewer.
                if ef < 4 * len(self._live) + 64:
                    ef *= 2
                elif k > 1:
                    k -= 1
                else:
                    return np.zeros(0, np.int64), np.zeros(0, np.float32)

    @property
    def query_shift(self) -> np.ndarray | None:
        """The vector ``query_shifted`` adds to a query (None: not set)."""
        return self._shift

    def set_query_shift(self, shift: np.ndarray | None) -> None:
        """Register the shift for ``query_shifted`` (reads every stored vector once)."""
        with self._lock:
            if shift is None:
                self._shift, self._shift_dots = None, {}
                return
            self._shift = np.array(shift, dtype=np.float32).reshape(self.dim)
            self._shift.flags.writeable = False
            self._shift_dots = {}
            ids = sorted(self._live)
            dots = (self.get_vectors(ids) @ self._shift).tolist()
            self._shift_dots = dict(zip(ids, dots, strict=True))

    def query_shifted(
        self, vector: np.ndarray, k: int, candidates: int, ef: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search with ``vector + shift``, re-rank ``candidates`` hits by ``vector``: top ``k``.

        Scores are the cosine of ``vector`` itself with each id, best first.
        """
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        with self._lock:
            if self._shift is None:
                raise ValueError("no query shift set (set_query_shift)")
            labels, shifted = self._knn((query + self._shift)[None], max(k, candidates), ef)
            dots = np.fromiter((self._shift_dots[int(i)] for i in labels), np.float64, len(labels))
        scores = shifted - dots
        best = np.argsort(-scores, kind="stable")[:k]
        return labels[best], scores[best].astype(np.float32)

    def save(self, directory: Path) -> None:
        """Write the graph and its live ids into ``directory`` (which must be new or empty)."""
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._index.save_index(str(directory / "hnsw.bin"))
            np.save(directory / "ids.npy", np.fromiter(sorted(self._live), np.int64))
            np.save(directory / "deleted.npy", np.fromiter(sorted(self._deleted), np.int64))
            params = {"dim": self.dim, "m": self.m, "ef_construction": self.ef_construction}
            (directory / "params.json").write_text(json.dumps(params))
            if self._shift is not None:  # saved so a loaded index need not read every vector
                dots = [self._shift_dots[i] for i in sorted(self._live)]
                np.save(directory / "shift.npy", self._shift)
                np.save(directory / "shift_dots.npy", np.asarray(dots, np.float64))

    @classmethod
    def load(
        cls, directory: Path, dim: int, *, m: int = 16, ef_construction: int = 200
    ) -> VectorIndex:
        """Read an index written by ``save``."""
        index = cls(dim, m=m, ef_construction=ef_construction)
        graph = hnswlib.Index(space="ip", dim=dim)
        try:
            # hnswlib trusts the dim it is given, so check it before reading the graph.
            stored_dim = json.loads((directory / "params.json").read_text())["dim"]
            if stored_dim != dim:
                raise IndexMismatch(f"index at {directory} has dim {stored_dim}, expected {dim}")
            graph.load_index(str(directory / "hnsw.bin"))
            live = np.load(directory / "ids.npy")
            deleted = np.load(directory / "deleted.npy")
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise IndexMismatch(f"cannot read index at {directory}: {exc}") from exc
        graph.set_num_threads(1)
        index._index = graph
        index._live = {int(i) for i in live}
        index._deleted = {int(i) for i in deleted}
        index._read_matrix(live)
        index._load_shift(directory, live)
        return index

    def _read_matrix(self, live: np.ndarray) -> None:
        """Fill the matrix from the loaded graph (hnswlib keeps the vectors too)."""
        ids = np.sort(live.astype(np.int64))
        self._matrix = np.zeros((max(len(ids), 64), self.dim), np.float32)
        for start in range(0, len(ids), 8192):
            chunk = ids[start : start + 8192]
            self._matrix[start : start + len(chunk)] = self._index.get_items(
                chunk, return_type="numpy"
            )
        self._rows = {int(i): row for row, i in enumerate(ids)}
        self._free = []
        self._sorted = None

    def _load_shift(self, directory: Path, live: np.ndarray) -> None:
        """Restore a saved query shift and its per-vector dots (ignored if unreadable)."""
        try:
            shift = np.load(directory / "shift.npy")
            dots = np.load(directory / "shift_dots.npy")
        except (OSError, ValueError):
            return
        if shift.shape != (self.dim,) or len(dots) != len(live):
            return
        self._shift = shift.astype(np.float32)
        self._shift.flags.writeable = False
        self._shift_dots = dict(zip(sorted(int(i) for i in live), dots.tolist(), strict=True))

    def same_shift(self, shift: np.ndarray | None) -> bool:
        """Whether ``shift`` is (within float rounding) the one registered."""
        if shift is None or self._shift is None:
            return shift is None and self._shift is None
        return bool(np.allclose(self._shift, shift, rtol=0, atol=SHIFT_TOLERANCE))


def best_of(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest scores and their ids, best first, ties to the lower id."""
    if k <= 0 or not len(ids):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(ids) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        cut = scores[keep].min()
        keep = np.flatnonzero(scores >= cut)  # every id tied at the cut, to break ties by id
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order].astype(np.float32)
