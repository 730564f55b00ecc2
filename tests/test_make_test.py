"""`make test` sets up what the browser tests need on a fresh machine: Debian's chromium is
installed when missing (root with apt-get), or the run stops at once with one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / ".ci" / "install-chromium"


def install(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def test_a_present_chromium_needs_nothing(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    done = install(tmp_path, CHROMIUM=str(browser), APT_GET="")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_without_a_way_to_install_it_stops_with_one_line(tmp_path: Path) -> None:
    done = install(tmp_path, CHROMIUM=str(tmp_path / "missing"), APT_GET="")
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "apt-get install chromium" in lines[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="installing needs root")
def test_root_installs_it_with_apt_get(tmp_path: Path) -> None:
    """apt-get is the boundary: a stand-in records its arguments and 'installs' the file."""
    browser, calls = tmp_path / "chromium", tmp_path / "calls"
    apt = tmp_path / "apt-get"
    apt.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        f'[ "$1" = install ] && printf "#!/bin/sh\\n" > {browser} && chmod +x {browser}\n'
        "exit 0\n"
    )
    apt.chmod(0o755)
    done = install(tmp_path, CHROMIUM=str(browser), APT_GET=str(apt))
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["install -y -q chromium"]
    assert os.access(browser, os.X_OK)


def test_make_test_installs_it_before_any_test_runs() -> None:
    plan = subprocess.run(
        ["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    step = next(i for i, line in enumerate(plan) if "install-chromium" in line)
    tests = next(i for i, line in enumerate(plan) if "pytest" in line)
    assert step < tests
    ci = [line.split("#")[0].strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ci.index("sh .ci/install-chromium") < ci.index("make test")
