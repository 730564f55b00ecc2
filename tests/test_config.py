"""Settings come from SCENERY_* variables and an optional TOML file, validated."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scenery.config import load_settings
from scenery.errors import ConfigError


def test_defaults_put_everything_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.root == tmp_path / "data"
    assert settings.db_url == f"sqlite:///{tmp_path / 'data' / 'scenery.db'}"
    assert settings.clip_model == "ViT-B-32"
    assert settings.clip_pretrained == "laion2b_s34b_b79k"
    assert settings.clip_device == "auto"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCENERY_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("SCENERY_CLIP_MODEL", "tiny-test")
    monkeypatch.setenv("SCENERY_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("SCENERY_INDEX_EF_SEARCH", "99")
    settings = load_settings()
    assert settings.images_dir == tmp_path / "elsewhere" / "images"
    assert settings.clip_model == "tiny-test"
    assert settings.db_url == "postgresql+psycopg://u@h/db"
    assert settings.index_ef_search == 99


def test_toml_file_fills_in_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "scenery.toml"
    config.write_text('clip_model = "RN50"\npage_size = 12\n')
    monkeypatch.setenv("SCENERY_CONFIG_FILE", str(config))
    monkeypatch.setenv("SCENERY_PAGE_SIZE", "30")
    settings = load_settings()
    assert settings.clip_model == "RN50"
    assert settings.page_size == 30


def test_missing_toml_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SCENERY_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


@pytest.mark.parametrize(("name", "value"), [("CLIP_DEVICE", "tpu"), ("PAGE_SIZE", "0")])
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"SCENERY_{name}", value)
    with pytest.raises(ConfigError, match=name.lower()):
        load_settings()


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first = settings.flask_secret()
    assert len(first) == 64
    assert load_settings(data_dir=tmp_path).flask_secret() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_workers_starting_together_share_one_secret_key(tmp_path: Path) -> None:
    # gunicorn workers boot at once; each must end up with the same key and none may fail
    barrier = threading.Barrier(8)

    def boot() -> str:
        barrier.wait()
        return load_settings(data_dir=tmp_path).flask_secret()

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: boot(), range(8)))
    assert keys == {(tmp_path / "secret_key").read_text()}
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left
