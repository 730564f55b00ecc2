"""`pip install .` must ship templates and static files inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_contains_code_templates_and_static(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("scenery-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "scenery/cli.py",
        "scenery/clip_configs/tiny-test.json",
        "scenery/migrations/env.py",
        "scenery/migrations/versions/0001_initial_schema.py",
        "web/templates/base.html",
        "web/templates/home.html",
        "web/static/style.css",
        "web/static/app.js",
        "ingest/__init__.py",
    ):
        assert expected in names, expected
    assert not any(name.startswith(("tests/", "data/")) for name in names)
