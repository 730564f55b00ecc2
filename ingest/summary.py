"""What an ingest run did, counted, and its table for people."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from rich.table import Table

from scenery.curation.verdicts import Decision, FilterResult


@dataclass
class IngestSummary:
    posts_seen: int = 0
    posts_known: int = 0  # decided in an earlier run
    listings_ok: int = 0
    images_found: int = 0
    published: int = 0
    queued: int = 0
    retry_later: int = 0  # failed this run for a passing reason: a later run tries again
    retry_waiting: int = 0  # downloads that failed in earlier runs, waiting for their retry
    purged: int = 0  # rejected images whose files passed their retention period
    refitted: bool = False  # the gallery model was refitted before deciding
    interrupted: bool = False  # stopped before the end (worker shutdown, lease lost)
    decided_elsewhere: int = 0  # candidates a concurrent run decided first
    skipped: Counter[str] = field(default_factory=Counter)  # posts without images, by reason
    rejected: Counter[str] = field(default_factory=Counter)  # by reason code
    queued_for: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)  # download/decode failures by code
    errors: list[str] = field(default_factory=list)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add_time(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def count(self, decision: Decision, deciding: Sequence[FilterResult]) -> None:
        if decision == Decision.PUBLISH:
            self.published += 1
        elif decision == Decision.QUEUE:
            self.queued += 1
            self.queued_for[deciding[0].code] += 1
        else:
            self.rejected[deciding[0].code] += 1

    @property
    def nothing_fetched(self) -> bool:
        """True when every listing failed: the only case the command exits non-zero."""
        return self.listings_ok == 0 and bool(self.errors)

    def table(self) -> Table:
        table = Table("", "count", title="ingest summary")
        rows: list[tuple[str, int]] = [
            ("posts seen", self.posts_seen),
            ("  already done in earlier runs", self.posts_known),
            ("images found", self.images_found),
            ("published", self.published),
            ("queued for review", self.queued),
            *((f"  queued: {code}", n) for code, n in self.queued_for.most_common()),
            ("rejected", sum(self.rejected.values())),
            *((f"  rejected: {code}", n) for code, n in self.rejected.most_common()),
            ("failed downloads/decodes", sum(self.failed.values())),
            *((f"  failed: {code}", n) for code, n in self.failed.most_common()),
            ("posts skipped", sum(self.skipped.values())),
            *((f"  skipped: {why}", n) for why, n in self.skipped.most_common(8)),
            ("retry on a later run", self.retry_later),
            ("  earlier failures waiting to retry", self.retry_waiting),
            ("listing errors", len(self.errors)),
            ("old rejected files dropped", self.purged),
            ("gallery model refitted", int(self.refitted)),
        ]
        for label, value in rows:
            table.add_row(label, str(value))
        return table


def summary_json(summary: IngestSummary) -> dict[str, Any]:
    """A summary as plain JSON for the database (per-stage timings left out)."""
    data: dict[str, Any] = {}
    for item in fields(summary):
        value = getattr(summary, item.name)
        # dataclasses.asdict would rebuild each Counter from (key, value) pairs: copy by hand
        data[item.name] = dict(value) if isinstance(value, dict) else value
    data.pop("seconds", None)
    data["rejected_total"] = sum(summary.rejected.values())
    data["failed_total"] = sum(summary.failed.values())
    return data
