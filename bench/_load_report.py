"""Figures for bench/load.py: per endpoint and per level, from every request's record."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import psutil  # comes with locust

SEARCH = frozenset({"/api/search?q=...", "/search?q=..."})  # text search: the CLIP text encoder
ALL_BUT_SEARCH = "all but text search"


@dataclass
class Level:
    """One level's requests (name, start epoch s, ms, error or None) and the ingest meanwhile."""

    users: int
    records: list[Any]
    ingest: Counter[str]
    cores: dict[str, float]  # cores busy on average: per process, and the whole machine

    @property
    def seconds(self) -> float:
        starts = [r[1] for r in self.records]
        return max(r[1] + r[2] / 1000 for r in self.records) - min(starts)

    def groups(self) -> dict[str, list[Any]]:
        """Records by endpoint, then all but text search, then all."""
        by_name: dict[str, list[Any]] = defaultdict(list)
        for record in self.records:
            by_name[record[0]].append(record)
        groups = dict(sorted(by_name.items()))
        groups[ALL_BUT_SEARCH] = [r for r in self.records if r[0] not in SEARCH]
        groups["all"] = self.records
        return groups


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def print_level(level: Level) -> None:
    errors = sum(1 for r in level.records if r[3])
    print(
        f"\n{level.users} users, {level.seconds:.0f} s: "
        f"{len(level.records) / level.seconds:.1f} requests/s, {errors} errors"
    )
    ingest = ", ".join(f"{k} {v}" for k, v in sorted(level.ingest.items()) if v > 0)
    print(f"  ingest meanwhile: {ingest or 'nothing finished'}")
    cores = dict(level.cores)
    machine = cores.pop("machine")
    parts = ", ".join(f"{name} {busy:.2f}" for name, busy in cores.items())
    print(
        f"  cores busy: {parts}, everything else {max(0.0, machine - sum(cores.values())):.2f} "
        f"(machine {machine:.2f} of {psutil.cpu_count()})"
    )
    print(
        f"  {'endpoint':30} {'n':>5} {'req/s':>6} {'p50 ms':>7} {'p95':>7} {'p99':>7} "
        f"{'max':>7} {'errors':>6}"
    )
    for name, records in level.groups().items():
        times = [r[2] for r in records]
        print(
            f"  {name:30} {len(times):5d} {len(times) / level.seconds:6.1f} "
            f"{percentile(times, 0.5):7.1f} {percentile(times, 0.95):7.1f} "
            f"{percentile(times, 0.99):7.1f} {max(times, default=0):7.1f} "
            f"{sum(1 for r in records if r[3]):6d}"
        )
    for error, n in Counter(r[3] for r in level.records if r[3]).most_common(5):
        print(f"  {n} x {error}")


def print_target(levels: list[Level], users: int, limit_ms: float) -> None:
    """The summary across levels, and whether the target holds at ``users``."""
    print(
        f"\n{'users':>5} {'req/s':>6} {'p50 ms':>7} {'p95':>7} {'p99':>7} "
        f"{'p99 but search':>15} {'p99 search':>11} {'errors':>6}"
    )
    for level in levels:
        times = [r[2] for r in level.records]
        rest = [r[2] for r in level.records if r[0] not in SEARCH]
        search = [r[2] for r in level.records if r[0] in SEARCH]
        print(
            f"{level.users:5d} {len(times) / level.seconds:6.1f} {percentile(times, 0.5):7.1f} "
            f"{percentile(times, 0.95):7.1f} {percentile(times, 0.99):7.1f} "
            f"{percentile(rest, 0.99):15.1f} {percentile(search, 0.99):11.1f} "
            f"{sum(1 for r in level.records if r[3]):6d}"
        )
    at = next((level for level in levels if level.users == users), None)
    if at is None:
        print(f"target: not checked (no {users}-user level ran)")
        return
    errors = sum(1 for r in at.records if r[3])
    p99 = percentile([r[2] for r in at.records if r[0] not in SEARCH], 0.99)
    holds = errors == 0 and p99 <= limit_ms
    print(
        f"target at {users} users (0 errors, p99 of all but text search <= {limit_ms:g} ms): "
        f"{'HOLDS' if holds else 'MISSED'} ({errors} errors, p99 {p99:.1f} ms)"
    )
