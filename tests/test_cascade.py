"""The cost-ordered cascade: cheap filters first; a candidate they reject never runs (nor
prepares) the expensive ones, which are recorded as not run and count for nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from scenery.curation.verdicts import (
    Decision,
    Facts,
    FilterResult,
    Verdict,
    by_cost,
    decide,
    run_cascade,
    screen,
)


def facts(sha: str) -> Facts:
    return Facts(
        sha, 800, 600, "0" * 64, "0" * 64, np.zeros(4, np.float32), Image.new("RGB", (4, 4))
    )


@dataclass
class Spy:
    """A filter that fails the candidates named in ``fails`` and records what it saw."""

    name: str
    fails: set[str] = field(default_factory=set)
    prepared: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def prepare(self, batch: Sequence[Facts]) -> None:
        self.prepared += [f.sha256 for f in batch]

    def check(self, facts: Facts) -> FilterResult:
        self.checked.append(facts.sha256)
        verdict = Verdict.FAIL if facts.sha256 in self.fails else Verdict.PASS
        return FilterResult(self.name, verdict, 0.5, f"{self.name} says {verdict}", "x")


def test_filters_run_cheapest_first_whatever_order_they_come_in() -> None:
    given = [
        Spy("watermark_text"),
        Spy("nsfw"),
        Spy("gallery_fit"),
        Spy("watermark"),
        Spy("image_rules"),
        Spy("phash_duplicate"),
        Spy("exact_duplicate"),
        Spy("clip_duplicate"),
    ]
    assert [f.name for f in by_cost(given)] == [
        "exact_duplicate",
        "image_rules",
        "phash_duplicate",
        "clip_duplicate",
        "gallery_fit",
        "nsfw",
        "watermark",
        "watermark_text",
    ]


def test_a_cheap_rejection_records_the_expensive_filters_as_not_run() -> None:
    fit, nsfw, mark = Spy("gallery_fit", {"a"}), Spy("nsfw"), Spy("watermark")
    rules = Spy("image_rules")
    results = run_cascade([mark, nsfw, fit, rules], facts("a"))
    assert [(r.filter, r.verdict) for r in results] == [
        ("image_rules", Verdict.PASS),
        ("gallery_fit", Verdict.FAIL),
        ("nsfw", Verdict.NOT_RUN),
        ("watermark", Verdict.NOT_RUN),
    ]
    assert results[2].reason == "not run: decided by gallery_fit" and results[2].score is None
    assert nsfw.checked == [] and mark.checked == []
    assert decide(results) == (Decision.REJECT, [results[1]])


def test_cheap_filters_after_a_cheap_rejection_still_run() -> None:
    rules, fit = Spy("image_rules", {"a"}), Spy("gallery_fit")
    results = run_cascade([fit, rules], facts("a"))
    assert [r.verdict for r in results] == [Verdict.FAIL, Verdict.PASS] and fit.checked == ["a"]


def test_an_expensive_rejection_skips_the_dearer_ones_after_it() -> None:
    nsfw, mark, text = Spy("nsfw", {"a"}), Spy("watermark"), Spy("watermark_text")
    results = run_cascade([text, mark, nsfw], facts("a"))
    assert [r.verdict for r in results] == [Verdict.FAIL, Verdict.NOT_RUN, Verdict.NOT_RUN]
    assert results[2].reason == "not run: decided by nsfw"


def test_not_run_counts_for_nothing_in_the_decision() -> None:
    fit, nsfw = Spy("gallery_fit"), Spy("nsfw")
    passed = run_cascade([fit, nsfw], facts("b"))
    assert decide(passed) == (Decision.PUBLISH, [])
    skipped = FilterResult("nsfw", Verdict.NOT_RUN, None, "not run: decided by x", "not_run")
    assert decide([passed[0], skipped]) == (Decision.PUBLISH, [])


def test_screen_prepares_each_expensive_filter_only_on_candidates_still_in() -> None:
    rules, fit = Spy("image_rules"), Spy("gallery_fit")
    nsfw, mark, text = Spy("nsfw", {"b"}), Spy("watermark", {"c"}), Spy("watermark_text")
    batch = [facts(s) for s in "abcd"]
    ran = screen([text, mark, nsfw, fit, rules], batch)
    assert rules.prepared == fit.prepared == [] and rules.checked == fit.checked == []
    assert nsfw.prepared == ["a", "b", "c", "d"]
    assert mark.prepared == ["a", "c", "d"]
    assert text.prepared == ["a", "d"] and text.checked == ["a", "d"]
    assert set(ran[1]) == {"nsfw"} and set(ran[2]) == {"nsfw", "watermark"}
    # The judgement reuses the screened results: nothing expensive runs again.
    before = (len(nsfw.checked), len(mark.checked), len(text.checked))
    results = run_cascade([text, mark, nsfw, fit, rules], batch[2], ran=ran[2])
    assert (len(nsfw.checked), len(mark.checked), len(text.checked)) == before
    assert [r.verdict for r in results][-3:] == [Verdict.PASS, Verdict.FAIL, Verdict.NOT_RUN]


def test_a_candidate_screened_out_that_the_cheap_filters_now_pass_is_checked_then() -> None:
    # Screening saw a state in which it was rejected; the judgement runs what is missing.
    nsfw = Spy("nsfw")
    results = run_cascade([Spy("gallery_fit"), nsfw], facts("e"), ran={})
    assert nsfw.checked == ["e"] and results[1].verdict == Verdict.PASS
