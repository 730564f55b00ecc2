"""Every benchmark in bench/ runs in its --quick mode and prints the figures it measured.

Each script runs as ``make bench`` runs it, as a subprocess from the repository root; no
SCENERY_* variable of the calling shell reaches it. A figure counts only as a number on the
line that names it; where a script prints a figure and what it was computed from, the two
must agree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.badfiles import HOSTILE
from tests.conftest import CHROMIUM, PG_URL, PHOTOS, REPO

# Where ONNX exports are cached: passed on, so a child process does not export the model again.
ONNX_CACHE = "SCENERY_ONNX_DIR"

NUM = r"(-?[0-9][0-9,]*(?:\.[0-9]+)?)"
TIMEOUT = 240  # seconds a quick run may take on a busy 2-core machine


def run_quick(script: str, *extra: str) -> str:
    """Run ``bench/<script>.py --quick``; its standard output, after asserting it exited 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_") or k == ONNX_CACHE}
    done = subprocess.run(
        [sys.executable, f"bench/{script}.py", "--quick", *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def figures(output: str, pattern: str) -> list[float]:
    """The numbers of the first line matching ``pattern`` (NUM marks each one)."""
    found = re.search(pattern, output, re.MULTILINE)
    assert found, f"no line matches {pattern!r} in:\n{output}"
    return [float(group.replace(",", "")) for group in found.groups()]


def rows(output: str, names: list[str], columns: int) -> dict[str, list[float]]:
    """Table rows by their first column: ``columns`` numbers after each name."""
    numbers = r"\s+".join([NUM] * columns)
    return {name: figures(output, rf"^\s*{re.escape(name)}\s+{numbers}") for name in names}


def sample_photos() -> int:
    return len(list(PHOTOS.glob("*.jpg")))


@pytest.mark.slow
def test_search_quick_reports_build_and_every_ef() -> None:
    out = run_quick("search")
    seconds, rate, _rss, disk, raw = figures(
        out,
        rf"build: {NUM} s \({NUM} vectors/s\), RSS \+{NUM} MiB, saved index {NUM} MiB "
        rf"\(raw float32 vectors {NUM} MiB\)",
    )
    assert seconds > 0 and rate > 0 and disk > 0 and raw > 0
    assert figures(out, rf"exact numpy search, one query: p50 {NUM} ms")[0] > 0
    table = re.findall(rf"^\s+(\d+)\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}x", out, re.MULTILINE)
    assert len(table) == 2 * 7, out  # both query kinds, every ef
    for _ef, p50, p99, recall, speedup in table:
        assert 0 < float(p50) <= float(p99) and 0 <= float(recall) <= 1 and float(speedup) > 0
    paths = re.findall(
        rf"^\s+(plain|gap-shift)\s+(\d+)\s+(\d+)\s+{NUM}\s+{NUM}\s+{NUM}(  <- project default)?$",
        out,
        re.MULTILINE,
    )
    assert [m for m, *_ in paths] == ["plain"] * 3 + ["gap-shift"] * 6, out
    for method, ef, candidates, p50, p99, recall, _ in paths:
        assert int(candidates) == (10 if method == "plain" else int(ef))
        assert 0 < float(p50) <= float(p99) and 0 <= float(recall) <= 1
    (default,) = [row for row in paths if row[-1]]
    recall, p50, ef, candidates = figures(
        out,
        rf"text-like new path at 2,000: recall@10 {NUM} p50 {NUM} ms \(ef={NUM}, "
        rf"candidates={NUM}; target >= 0.95 at <= 1 ms\): (?:met|NOT met)",
    )
    assert (ef, candidates, p50) == (float(default[1]), float(default[2]), float(default[3]))
    assert recall == float(default[5]) >= 0.9  # the steered search, re-ranked, finds the top 10
    # filtered search: every share for both kinds, ten results each, exact where few match
    filtered = re.findall(
        rf"^\s+{NUM}%\s+{NUM}\s+(image-like|text-like)\s+{NUM}\s+{NUM}\s+{NUM}\s+(\d+)\s+(.+)$",
        out,
        re.MULTILINE,
    )
    assert [(float(r[0]), r[2]) for r in filtered] == [
        (share, kind) for share in (50.0, 10.0, 1.0, 0.1) for kind in ("image-like", "text-like")
    ], out
    for share, matching, _kind, recall, p50, p95, fewest, plans in filtered:
        assert float(matching.replace(",", "")) == max(10, round(2000 * float(share) / 100))
        assert 0 <= float(recall) <= 1 and 0 < float(p50) <= float(p95) and int(fewest) == 10
        counts = dict(part.split(" ") for part in plans.split(", "))
        assert sum(int(n) for n in counts.values()) == 120  # 100 queries + 20 warm-up
        if float(matching.replace(",", "")) <= 200:
            assert float(recall) == 1.0 and set(counts) == {"exact"}
    verdict = re.search(r"filtered verdict: (PASS|FAIL) \(", out)
    lowest = min(float(r[3]) for r in filtered)
    assert verdict is not None and (verdict.group(1) == "PASS") == (
        lowest >= 0.95 and max(float(r[4]) for r in filtered) <= 5
    )


STEPS = [
    "read + sha256",
    "decode (draft, grid edge)",
    "grid thumbnail",
    "perceptual hashes",
    "encode grid JPEG",
    "embed (batched)",
    "write original",
    "write grid JPEG",
]


@pytest.mark.slow
def test_import_speed_quick_times_the_importer_and_its_steps_on_every_runtime() -> None:
    out = run_quick("import_speed", *runtime_flags())
    blocks = runtime_blocks(out)
    pipelines = []
    for block in blocks:
        steps = rows(block, STEPS, 1)
        assert all(ms >= 0 for (ms,) in steps.values())
        assert figures(block, rf"^sum of steps\s+{NUM}")[0] == pytest.approx(
            sum(ms for (ms,) in steps.values()), abs=0.01 * len(STEPS)
        )
        pipeline = figures(block, rf"import pipeline \(end to end\):\s+{NUM} images/s")[0]
        alone = figures(block, rf"embedding alone:\s+{NUM} images/s")[0]
        assert 1000 / steps["embed (batched)"][0] == pytest.approx(alone, rel=0.02, abs=0.1)
        ratio = figures(block, rf"ratio pipeline / embedding:\s+{NUM}")[0]
        assert ratio == pytest.approx(pipeline / alone, abs=0.01 + 0.06 / alone)
        assert figures(block, rf"page thumbnail, first view:\s+{NUM} ms")[0] > 0
        pipelines.append(pipeline)
    assert_ratios_to_torch(out, pipelines)


@pytest.mark.slow
def test_api_latency_quick_compares_old_and_new_paths_on_the_gallery_asked_for() -> None:
    out = run_quick("api_latency")
    old_total, new_total = figures(
        out, rf"model tiny-test, {NUM} images in the gallery \(/api/images total; new path: {NUM}\)"
    )
    assert old_total == new_total == 2000
    built, photos = figures(out, rf"gallery: built {NUM} images \({NUM} sample photos imported")
    assert (built, photos) == (2000, sample_photos())
    assert re.search(
        r"^old path: SCENERY_CLIP_RUNTIME=torch SCENERY_CLIP_SHORT_CONTEXT=false "
        r"SCENERY_QUERY_CACHE_SIZE=0$",
        out,
        re.MULTILINE,
    )
    assert re.search(
        r"^new path: SCENERY_CLIP_RUNTIME=onnx SCENERY_CLIP_SHORT_CONTEXT=true "
        r"SCENERY_QUERY_CACHE_SIZE=1024$",
        out,
        re.MULTILINE,
    )
    endpoints = [
        "GET /api/search (cache misses)",
        "GET /api/search (cache hits)",
        "GET /api/images/<id>/similar",
        "POST /api/search/image",
        "GET /api/images?page=1",
    ]
    table = rows(out, endpoints, 8)
    for name, (n, old_p50, old_p90, old_p99, new_p50, new_p90, new_p99, ratio) in table.items():
        assert n == (10 if name.startswith("POST") else 5)
        assert 0 < old_p50 <= old_p90 <= old_p99 and 0 < new_p50 <= new_p90 <= new_p99
        assert ratio == pytest.approx(old_p50 / new_p50, abs=0.01 + ratio * 0.01 / new_p50)
    for path in ("old", "new"):
        memory = re.search(
            rf"^{path} worker RSS after warm-up: {NUM} MiB "
            r"\(torch loaded: (yes|no), onnxruntime loaded: (yes|no)\)$",
            out,
            re.MULTILINE,
        )
        assert memory, f"no RSS line for the {path} path in:\n{out}"
        assert float(memory[1]) > 0
        if path == "old":
            assert memory[2] == "yes"  # the old path runs the model with torch
        healthy, first = figures(
            out,
            rf"^{path} cold start: /healthz 200 after {NUM} s, "
            rf"first search answered after {NUM} s",
        )
        assert 0 < healthy <= first
    assert min(figures(out, rf"1-minute load average at launch: old {NUM}, new {NUM}")) >= 0
    miss = re.search(
        rf"^new /api/search p50 on cache misses: {NUM} ms \(target <= 25 ms\): (met|NOT met)$",
        out,
        re.MULTILINE,
    )
    assert miss and float(miss[1]) == pytest.approx(table[endpoints[0]][4], abs=0.06)
    assert miss[2] == ("met" if float(miss[1]) <= 25 else "NOT met")
    ratio = re.search(
        rf"^ratio old/new /api/search misses p50: {NUM}x \(target >= 3x\): (met|NOT met)$",
        out,
        re.MULTILINE,
    )
    assert ratio and float(ratio[1]) == pytest.approx(table[endpoints[0]][7], abs=0.02)
    assert ratio[2] == ("met" if float(ratio[1]) >= 3 else "NOT met")
    image = re.search(
        rf"^new POST /api/search/image p50: {NUM} ms \(target <= 120 ms\): (met|NOT met)$",
        out,
        re.MULTILINE,
    )
    assert image and float(image[1]) == pytest.approx(table[endpoints[3]][4], abs=0.06)
    assert image[2] == ("met" if float(image[1]) <= 120 else "NOT met")


@pytest.mark.slow
def test_ingest_quick_decides_every_photo_and_reports_its_fastest_run_on_every_runtime() -> None:
    out = run_quick("ingest", *runtime_flags())
    rates = []
    for block in runtime_blocks(out):
        decided, published, seconds = figures(
            block, rf"^{NUM} images decided \({NUM} published\) in {NUM} s"
        )
        assert decided == 6 and 0 <= published <= decided and seconds > 0
        rate = figures(block, rf"pipeline throughput:\s+{NUM} images/s")[0]
        assert decided / (seconds + 0.05) <= rate <= decided / max(seconds - 0.05, 1e-9)  # 0.1 s
        alone = figures(block, rf"embedding alone:\s+{NUM} images/s")[0]
        ratio = figures(block, rf"ratio pipeline/embed:\s+{NUM}")[0]
        assert ratio == pytest.approx(rate / alone, abs=0.01 + 0.06 / alone)
        pipeline_cpu, alone_cpu = figures(
            block, rf"CPU per image: pipeline {NUM} ms, embedding alone {NUM} ms"
        )
        assert pipeline_cpu >= 0 and alone_cpu >= 0
        rates.append(rate)
    assert_ratios_to_torch(out, rates)


CLIP_RUNTIMES = ["torch", "onnx", "onnx-int8"]


def runtime_flags() -> list[str]:
    return [flag for runtime in CLIP_RUNTIMES for flag in ("--runtime", runtime)]


def runtime_blocks(output: str) -> list[str]:
    """Each runtime's block of a script's output, in turn, from just after its header
    (``== tiny-test (64-d)``, then ``(64-d, onnx)``...), asserting there is one per runtime."""
    parts = re.split(r"^== tiny-test \(64-d(?:, (onnx|onnx-int8))?\)[,:] ", output, flags=re.M)
    assert [runtime or "torch" for runtime in parts[1::2]] == CLIP_RUNTIMES, output
    return parts[2::2]


def assert_ratios_to_torch(output: str, rates: list[float]) -> None:
    """The line per runtime repeats its block's throughput and gives its ratio to torch's."""
    for runtime, expected in zip(CLIP_RUNTIMES, rates, strict=True):
        rate, ratio = figures(
            output, rf"^runtime {re.escape(runtime)}\s+{NUM} images/s  {NUM}x torch$"
        )
        assert rate == expected > 0
        # both rates printed to 0.1, the ratio to 0.01
        assert ratio == pytest.approx(rate / rates[0], abs=0.01 + 0.06 * (1 + ratio) / rates[0])


@pytest.mark.slow
def test_runtimes_quick_measures_every_runtime_and_how_far_their_answers_are() -> None:
    out = run_quick("runtimes")
    assert re.search(r"^ONNX export: (reused|made now in) \S+tiny-test-", out, re.MULTILINE)
    latency = {
        (runtime, context): (float(p50), float(p90))
        for runtime, context, p50, p90 in re.findall(
            rf"^(torch|onnx|onnx-int8)\s+(short|full)\s+{NUM}\s+{NUM}$", out, re.MULTILINE
        )
    }
    assert list(latency) == [
        ("torch", "short"),
        ("torch", "full"),
        ("onnx", "short"),
        ("onnx", "full"),
        ("onnx-int8", "short"),
    ]
    assert all(0 < p50 <= p90 for p50, p90 in latency.values())
    ratios = figures(out, rf"^ratio full/short p50: torch {NUM}x, onnx {NUM}x$")
    for runtime, ratio in zip(["torch", "onnx"], ratios, strict=True):
        full, short = latency[(runtime, "full")][0], latency[(runtime, "short")][0]
        assert ratio == pytest.approx(full / short, abs=0.01 + 0.01 * ratio / short)
    cross = figures(out, rf"^ratio torch-full/onnx-short p50: {NUM}x$")[0]
    onnx_short = latency[("onnx", "short")][0]
    full = latency[("torch", "full")][0]
    assert cross == pytest.approx(full / onnx_short, abs=0.01 + 0.01 * cross / onnx_short)
    for runtime in CLIP_RUNTIMES:
        one, batch = figures(out, rf"^{re.escape(runtime)}\s+{NUM}\s+{NUM}$")
        assert one > 0 and batch > 0
        found = re.search(
            rf"^{re.escape(runtime)}\s+{NUM}\s+{NUM}\s+{NUM}\s+(yes|no)$", out, re.MULTILINE
        )
        assert found, f"no load row for {runtime} in:\n{out}"
        load, process, rss = (float(v) for v in found.groups()[:3])
        assert load > 0 and process > 0 and rss > 0
        assert found[4] == ("yes" if runtime == "torch" else "no")  # ONNX runs without torch
    image, short, full = figures(
        out,
        rf"^fp32 onnx vs torch \(full context\) max abs difference per component: image {NUM}, "
        rf"text short {NUM}, text full {NUM} \(limit 0\.0001\): ok$",
    )
    assert max(image, short, full) <= 1e-4
    image_min, image_median, text_min, text_median = figures(
        out, rf"^int8 vs fp32 cosine: images min {NUM} median {NUM}; text min {NUM} median {NUM}$"
    )
    assert -1 <= image_min <= image_median <= 1 and -1 <= text_min <= text_median <= 1
    for pair in ("int8 vs fp32", "fp32 onnx vs torch"):
        text_mean, text_low, photo_mean, photo_low = figures(
            out,
            rf"^{pair} top-10 overlap: text queries mean {NUM} \(min {NUM}\), "
            rf"photo queries mean {NUM} \(min {NUM}\)$",
        )
        assert 0 <= text_low <= text_mean <= 1 and 0 <= photo_low <= photo_mean <= 1


@pytest.mark.slow
def test_curation_quick_times_each_filter_as_the_pipeline_calls_it() -> None:
    from scenery.config import Settings

    out = run_quick("curation")
    assert figures(out, rf"fits tried:\s+{NUM}")[0] >= 1
    assert figures(out, rf"fit time:\s+{NUM} s")[0] > 0
    stages = rows(
        out,
        [
            "base (decode, thumb, hash, embed)",
            "gallery fit (GMM)",
            "watermark (4 embeddings + clf)",
            "NudeNet (batched)",
            "CLIP zero-shot NSFW",
            f"OCR text (decode + read {Settings().ocr_max_side} px)",
        ],
        2,
    )
    total = figures(out, rf"^total\s+{NUM}")[0]
    assert total == pytest.approx(sum(ms for ms, _ in stages.values()), abs=0.05)
    assert stages["NudeNet (batched)"][0] > 0 and stages["base (decode, thumb, hash, embed)"][0] > 0
    # the cascade: a mix the gallery fit mostly rejects, every cost also as a ratio to the base
    [share] = figures(out, rf"^== cascade, tiny-test \(64-d\): {NUM} candidates, {NUM}% rejected")[
        1:
    ]
    assert 50 <= share <= 100
    assert re.search(r"^OCR:\s+on \(text view \d+ px\)$", out, re.M)
    cascade = out.split("== cascade")[1]
    costs = rows(
        cascade,
        [
            "base (decode, thumb, hash, embed)",
            "mix, every filter on every one",
            "mix, cascade",
            "mix, cascade, OCR off",
            "passes every filter",
        ],
        2,
    )
    base = costs["base (decode, thumb, hash, embed)"][0]
    assert costs["base (decode, thumb, hash, embed)"][1] == 1.0
    for ms, ratio in costs.values():
        # the printed ms are rounded to 0.1, the ratios computed before rounding
        assert ms >= base * 0.99 and ratio == pytest.approx(ms / base, rel=0.06 / base + 0.002)
    [ratio] = figures(cascade, rf"^cascade on the mix:\s+{NUM}x base")
    assert ratio == costs["mix, cascade"][1]


@pytest.mark.slow
@pytest.mark.browser
def test_review_session_quick_counts_the_keys_it_pressed() -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (.ci/run does)")
    out = run_quick("review_session")
    queued, decided, left = figures(
        out, rf"review session: {NUM} queued images, {NUM} decided, {NUM} left in the queue"
    )
    assert queued == 4 and decided == 4 and left == 0
    published, rejected = figures(out, rf"decisions:\s+published {NUM}, rejected {NUM}")
    assert published + rejected == decided
    keys, per_hundred = figures(out, rf"decision keys:\s+{NUM}\s+\({NUM} per 100 decisions\)")
    assert keys == decided and per_hundred == 100
    clicks, typed = figures(out, rf"login: {NUM} click, {NUM} keys typed")
    assert clicks == 1 and typed == len("owner") + len("bench password")
    assert figures(out, rf"page loads:\s+{NUM} in all")[0] >= 2
    seconds, per_decision = figures(out, rf"time deciding:\s+{NUM} s, {NUM} ms per decision")
    assert per_decision == pytest.approx(seconds / decided * 1000, abs=0.05 / decided * 1000 + 1)


@pytest.mark.slow
def test_task_queue_quick_measures_both_queues_and_both_databases() -> None:
    out = run_quick("task_queue", "--pg-url", PG_URL)
    for queue in ("sqlite", "redis"):
        busy = figures(out, rf"^{queue}\s+busy \(20 ms gaps\)\s+" + r"\s+".join([NUM] * 7))
        idle = figures(out, rf"^{queue}\s+after 1\.5 s idle\s+" + r"\s+".join([NUM] * 7))
        assert busy[0] == 10 and idle[0] == 2
        for _n, enqueue_p50, enqueue_p99, p50, p90, p99, top in (busy, idle):
            assert 0 <= enqueue_p50 <= enqueue_p99 and 0 <= p50 <= p90 <= p99 <= top
    claims = rows(out, ["sqlite", "postgresql"], 6)
    for tick, low, high, enqueue, each, idle_ms in claims.values():
        assert low <= tick <= high and 0 <= enqueue <= tick and each >= 0 and idle_ms > 0
        # one tick, so its own enqueueing; both printed to the millisecond
        assert each == pytest.approx((tick - enqueue) / 50 * 1000, abs=0.03)


@pytest.mark.slow
def test_load_quick_runs_one_level_against_a_real_server() -> None:
    out = run_quick("load")
    assert figures(out, rf"built {NUM} gallery images")[0] == 100
    users, seconds, rate, _errors = figures(
        out, rf"^{NUM} users, {NUM} s: {NUM} requests/s, {NUM} errors"
    )
    assert users == 3 and seconds > 0 and rate > 0
    n, per_second, p50, p95, p99, top, _ = figures(out, r"^\s+all\s+" + r"\s+".join([NUM] * 7))
    assert n > 0 and per_second == pytest.approx(rate, abs=0.1)
    assert p50 <= p95 <= p99 <= top
    posts, before = figures(out, rf"posts on the fake subreddit: {NUM} \({NUM} before")
    assert before == sample_photos() + 15 and posts >= before


@pytest.mark.slow
def test_hostile_images_quick_answers_every_file_and_reports_its_cost() -> None:
    light = [h for h in HOSTILE if not h.heavy]
    out = run_quick("hostile_images")
    assert figures(out, rf"model tiny-test \(random weights\), {NUM} images in the gallery")[0] == 8
    table = re.findall(
        rf"^(\S.*?)\s+{NUM}\s+(200|400)\s+{NUM}\s+{NUM}\s+{NUM}  ", out, re.MULTILINE
    )
    assert [row[0] for row in table] == ["ordinary photo (sample JPEG)"] + [h.name for h in light]
    photo, hostile = table[0], table[1:]
    assert photo[2] == "200" and float(photo[3]) > 0
    for (_name, _size, status, wall, cpu, extra), made in zip(hostile, light, strict=True):
        assert int(status) == (400 if made.refused else 200)
        assert float(wall) >= 0 and float(cpu) >= 0 and float(extra) >= 0
        assert made.refused or float(wall) > 0  # a decoded giant takes measurable time
    within, files = figures(out, rf"within 2 s and 300 MB: {NUM} of {NUM} files")
    assert files == len(light)
    assert within == sum(float(r[3]) <= 2 and float(r[5]) <= 300 for r in hostile)
    assert (
        figures(out, rf"refused or answered as the budget says: {NUM} of {NUM}") == [len(light)] * 2
    )
    wall, _cpu = figures(out, rf"slowest: {NUM} s wall \({NUM} s CPU\)")
    assert wall == max(float(r[3]) for r in hostile)
    cpu, beside = figures(out, rf"most CPU: {NUM} s \({NUM} s beside the photo\)")
    assert cpu == max(float(r[4]) for r in hostile)
    assert beside == pytest.approx(cpu - float(photo[4]), abs=0.011)
    assert figures(out, rf"most memory: \+{NUM} MB")[0] == max(float(r[5]) for r in hostile)


def setup_row(output: str, name: str) -> list[str]:
    """The columns after a setup's name in bench/slow_clients.py's table."""
    numbers = r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+) of (\d+)"
    found = re.search(rf"^{re.escape(name)}{numbers}\s+(\d+) in \S+ s$", output, re.MULTILINE)
    assert found, f"no row for {name!r} in:\n{output}"
    return list(found.groups())


@pytest.mark.slow
def test_slow_clients_quick_shows_sync_workers_blocked_and_serve_prod_answering() -> None:
    out = run_quick("slow_clients")
    probes, fast, timed_out, _, _, _, answered, uploads, _ = setup_row(out, "sync workers (before)")
    # One worker, ten half-sent requests: the sync worker answers nobody else.
    assert int(probes) >= 1 and int(fast) == 0 and int(timed_out) == int(probes)
    assert int(answered) < int(uploads) == 4
    probes, fast, timed_out, p50, top, _, answered, uploads, first = setup_row(
        out, "scenery serve --prod"
    )
    assert int(probes) >= 2 and int(fast) == int(probes) and int(timed_out) == 0
    assert 0 < float(p50) <= float(top) < 1000
    assert int(answered) == int(uploads) == 4 and first == "200"


@pytest.mark.slow
def test_backup_quick_times_backup_and_restore_on_both_databases() -> None:
    out = run_quick("backup", "--pg-url", PG_URL)
    assert figures(out, rf"^gallery: {NUM} images")[0] == 120
    for kind in ("sqlite", "postgresql"):

        def seconds(stage: str, kind: str = kind) -> float:
            return figures(out, rf"^{kind}\s+{re.escape(stage)}\s+{NUM}")[0]

        backup = [seconds(f"backup: {s}") for s in ("database", "files", "sync")]
        assert min(backup) >= 0
        assert seconds("backup: total") == pytest.approx(sum(backup), abs=0.003)
        steps = ("check and copy files", "database", "sync", "migrate", "index", "doctor")
        restore = [seconds(f"restore: {s}") for s in steps]
        assert min(restore) >= 0
        assert seconds("restore: total") == pytest.approx(sum(restore), abs=0.005)
        linked, new, size, share = figures(
            out,
            rf"^{kind}: second backup linked {NUM} originals and wrote {NUM} MiB new on disk of "
            rf"{NUM} MiB \({NUM}%\)",
        )
        assert linked == 120 and 0 < new < size
        # both sizes are printed to 0.05 MiB, the share to 0.05%
        assert (new - 0.05) / (size + 0.05) * 100 - 0.05 <= share
        assert share <= (new + 0.05) / (size - 0.05) * 100 + 0.05


@pytest.mark.slow
def test_watermark_quick_reports_each_signal_per_style_and_the_ocr_cost() -> None:
    from scenery.config import Settings

    out = run_quick("watermark")
    bases, negatives, styles, images = figures(
        out, rf"^labelled set: {NUM} base photos x \({NUM} negatives \+ {NUM} styles\) = {NUM}"
    )
    assert bases == 4 and images == bases * (negatives + styles) and styles >= 6
    text_styles = ["corner signature", "@handle", "URL", "centred translucent", "tiled stock"]
    every = [*text_styles, "logo mark (not text)", "text styles (overall)"]
    sections = {s.split("\n", 1)[0]: s for s in re.split(r"^== ", out, flags=re.MULTILINE)}
    ocr = next(s for title, s in sections.items() if title.startswith("OCR signal"))
    clip = next(s for title, s in sections.items() if title.startswith("CLIP quadrant"))
    both = next(s for title, s in sections.items() if title.startswith("combined"))
    fail, queue = figures(ocr, rf"thresholds: fail >= {NUM}, queue >= {NUM}")
    defaults = Settings()
    assert (fail, queue) == (defaults.ocr_watermark_threshold, defaults.ocr_watermark_borderline)
    tables = {name: rows(text, every, 7) for name, text in (("ocr", ocr), ("both", both))}
    tables["clip"] = rows(clip, every, 7)
    for table in tables.values():
        for name, (n, rejected, queued, passed, recall, rejects, _) in table.items():
            assert n == rejected + queued + passed, name
            assert recall == pytest.approx((rejected + queued) / n, abs=0.006), name
            assert rejects == pytest.approx(rejected / n, abs=0.006), name
        overall = table["text styles (overall)"]
        assert overall[:4] == [sum(table[s][i] for s in text_styles) for i in range(4)]
    for name in every:  # rejected when either rejects, passed only when both pass
        assert tables["both"][name][1] >= max(tables["ocr"][name][1], tables["clip"][name][1])
        assert tables["both"][name][3] <= min(tables["ocr"][name][3], tables["clip"][name][3])
    negatives_rows = rows(ocr, ["clean", "scene text"], 4)
    for n, rejected, queued, passed in negatives_rows.values():
        assert n == bases == rejected + queued + passed
    cost = rf"^OCR stage per candidate at {NUM} px: median {NUM} ms, p90 {NUM} ms over {NUM}"
    median, p90, count = figures(ocr, cost)[1:]
    assert 0 < median <= p90 and count == images
    side, recall, rejected_negatives = figures(
        out, rf"^side {NUM} px: recall {NUM}, clean or scene-text rejected {NUM}"
    )
    assert side == defaults.ocr_max_side
    assert recall == tables["ocr"]["text styles (overall)"][4]
    assert rejected_negatives == sum(r[1] for r in negatives_rows.values())
    verdict = re.search(r"^acceptance at .*: (PASS|FAIL)$", out, re.MULTILINE)
    assert verdict is not None
    assert (verdict.group(1) == "PASS") == (recall >= 0.9 and rejected_negatives == 0)
    assert "random weights" in clip
