"""Settings: one typed object from ``SCENERY_*`` environment variables and an optional TOML file."""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from scenery.errors import ConfigError

GRID_THUMB = 400
"""Longest edge of grid thumbnails, written at import time (they are embedded too)."""
PAGE_THUMB = 1600
"""Longest edge of image-page thumbnails, written on first request rather than at import."""
THUMB_SIZES = (GRID_THUMB, PAGE_THUMB)
MAX_IMAGE_PIXELS = 100_000_000
"""The most pixels an image may say it has (a decompression bomb guard)."""
MAX_DECODE_MB = 192
"""MiB of work decoding one image may take (samples unpacked or buffers held), judged from its
header: a bound on a worker's memory and time per image."""
MAX_IMAGE_ASPECT = 20.0
"""How many times longer than its short side an image's long side may be."""


class Settings(BaseSettings):
    """Everything Scenery can be told; read once per process and passed down."""

    model_config = SettingsConfigDict(env_prefix="SCENERY_", extra="ignore", frozen=True)

    config_file: Path | None = Field(
        default=None, description="Optional TOML file (SCENERY_CONFIG_FILE)."
    )
    data_dir: Path = Path("data")
    database_url: str | None = None

    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_device: str = "auto"
    clip_batch_size: int = Field(default=32, ge=1)
    clip_threads: int | None = Field(default=None, ge=1)
    # How the CLIP towers run on the CPU: torch, or ONNX Runtime (exported on first use into
    # models/onnx/, so a web process never imports torch); onnx-int8 is a separate vector space.
    clip_runtime: Literal["torch", "onnx", "onnx-int8"] = "onnx"
    # Where ONNX exports are kept (default: <data dir>/models/onnx); several galleries, or the
    # test suite, can share one folder of exports.
    onnx_dir: Path | None = None
    # Encode a text query over its own tokens only (exact; see scenery.text_context), not the
    # full 77-position context.
    clip_short_context: bool = True
    # Text embeddings kept per process (LRU, keyed by model and normalised query); 0: none.
    query_cache_size: int = Field(default=1024, ge=0)

    index_m: int = Field(default=16, ge=4)
    index_ef_construction: int = Field(default=200, ge=16)
    index_ef_search: int = Field(default=64, ge=8)
    # Text queries across the modality gap (scenery.modality_gap.query_across_gap): the graph is
    # searched with the query minus this share of the mean text embedding, for this many
    # candidates (also the beam), re-ranked exactly by the query (see bench/search.py).
    index_text_candidates: int = Field(default=320, ge=10)
    index_text_gap_strength: float = Field(default=0.5, ge=0, le=1)
    index_refresh_seconds: float = Field(default=2.0, ge=0)

    # Every decoded image (upload, import, ingest, evaluate): pixels it may say it has, MiB of
    # work its decode may take (JPEGs count at the reduced scale they decode at; PNG, GIF,
    # WebP, BMP, TIFF and progressive JPEGs at full size), long side over short side.
    max_image_pixels: int = Field(default=MAX_IMAGE_PIXELS, ge=1)
    max_decode_mb: int = Field(default=MAX_DECODE_MB, ge=1)
    max_image_aspect: float = Field(default=MAX_IMAGE_ASPECT, ge=1)
    max_file_bytes: int = Field(default=60 * 1024 * 1024, ge=1)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)

    page_size: int = Field(default=48, ge=1, le=500)
    search_k: int = Field(default=48, ge=1)
    max_k: int = Field(default=200, ge=1)
    # "fits my screen": the share of one side a photo may lose to cover the screen
    fit_crop_tolerance: float = Field(default=0.2, ge=0, le=0.9)
    # Auto tags (scenery.tags): the vocabulary file (None: the packaged one) and the zero-shot
    # probability from which a tag applies
    auto_tags: bool = True
    tag_vocabulary: Path | None = None
    tag_min_probability: float = Field(default=0.15, gt=0, le=1)
    # The gallery's address as visitors reach it (https://photos.example.org, or with the path
    # it is served under): the JSON API's absolute URLs are built on it. Unset, they are
    # root-relative. The Host header, which any client sets, never goes into a URL.
    public_url: str | None = None
    # How long browsers and shared caches may keep a published image's files before they
    # ask again: an unpublished or deleted image disappears from every cache within this.
    media_cache_seconds: int = Field(default=3600, ge=0, le=7 * 24 * 3600)

    secret_key: str | None = None

    # -- Reddit ingest ------------------------------------------------------------------------
    reddit_base_url: str = "https://www.reddit.com"
    reddit_oauth_base_url: str = "https://oauth.reddit.com"
    reddit_client_id: str | None = None  # an app's credentials give higher rate limits
    reddit_client_secret: str | None = None
    reddit_username: str = "scenery-gallery"  # named in the User-Agent, as Reddit asks
    reddit_user_agent: str | None = None  # default: python:scenery:<version> (by /u/<username>)
    reddit_request_interval: float = Field(default=1.0, ge=0)  # seconds between listing calls
    reddit_max_tries: int = Field(default=5, ge=1)
    reddit_timeout: float = Field(default=30.0, gt=0)
    retry_backoff_base: float = Field(default=1.0, ge=0)  # first retry wait; doubles, jittered
    retry_backoff_max: float = Field(default=60.0, ge=0)
    rate_limit_default_wait: float = Field(default=60.0, ge=0)  # on 429 without Retry-After
    # A post whose image host's API failed is resolved again by a later run: this long after
    # the first failure, three times longer after each next one, given up after so many runs.
    resolve_retry_seconds: float = Field(default=900.0, ge=0)
    resolve_max_attempts: int = Field(default=5, ge=1)
    imgur_client_id: str | None = None
    imgur_api_base_url: str = "https://api.imgur.com"
    imgur_image_base_url: str = "https://i.imgur.com"  # where imgur.com/<id> pages' files live
    flickr_api_key: str | None = None
    flickr_api_base_url: str = "https://api.flickr.com"
    skip_nsfw: bool = True
    skip_spoilers: bool = True

    # -- safe download ------------------------------------------------------------------------
    download_max_bytes: int = Field(default=40 * 1024 * 1024, ge=1)
    download_connect_timeout: float = Field(default=10.0, gt=0)
    download_read_timeout: float = Field(default=30.0, gt=0)
    # The most one download may take, retries included: a host that stalls or trickles
    # holds a worker this long at most.
    download_total_timeout: float = Field(default=60.0, gt=0)
    # A download that failed for a passing reason (timeout, 5xx, cut short) is tried by a
    # later run: this long after the first failure, three times longer after the second.
    download_retry_seconds: float = Field(default=900.0, ge=0)
    download_concurrency: int = Field(default=4, ge=1)
    download_max_redirects: int = Field(default=5, ge=0)
    # Tests only: lets downloads reach 127.0.0.1 and private ranges (never set in production).
    allow_private_urls: bool = False

    # -- image rules (defaults from the reference Reddit miner) -----------------------------------
    min_pixels: int = Field(default=1_310_720, ge=1)  # 1280 x 1024
    max_wide_ratio: float = Field(default=3.0, gt=0)  # width / height
    max_tall_ratio: float = Field(default=2.0, gt=0)  # height / width

    # -- near-duplicates ------------------------------------------------------------------------
    phash_max_distance: int = Field(default=48, ge=0)  # of 256 bits; closest distinct pair: 70
    # Fail at or above; a value over 1 turns the CLIP duplicate check off.
    clip_duplicate_similarity: float = Field(default=0.95, ge=-1, le=2)
    clip_duplicate_borderline: float = Field(default=0.90, ge=-1, le=2)  # queue at or above
    rejected_file_retention_days: int = Field(default=30, ge=0)

    # -- gallery fit (GMM over PCA-reduced CLIP features) ---------------------------------------
    gallery_fit: bool = True  # off: no gallery-fit filter (and no cold-start queueing)
    gmm_min_reference: int = Field(default=50, ge=2)  # below this: no model, queue everything
    gmm_max_dims: int = Field(default=128, ge=1)
    gmm_max_components: int = Field(default=32, ge=1)
    gmm_pass_share: float = Field(default=0.95, gt=0, lt=1)  # of held-out references that pass
    gmm_borderline_share: float = Field(default=0.99, gt=0, lt=1)  # pass or borderline
    gmm_refit_growth: float = Field(default=0.2, ge=0)  # refit when the reference set grew 20%

    # -- watermark detector (probability of a watermark) --------------------------------------
    watermark_filter: bool = True  # used once `scenery train watermark` has made a model
    watermark_threshold: float = Field(default=0.85, ge=0, le=1)  # reject at or above
    watermark_borderline: float = Field(default=0.5, ge=0, le=1)  # queue at or above
    # The four quadrant views go through the int8 ONNX image tower of the same CLIP model
    # (about twice as fast; ~90 MB more in a worker). Off: through the main CLIP model. A
    # detector is scored by the embedder it was trained with, so this applies to new trainings.
    watermark_int8: bool = True

    # -- text watermarks: RapidOCR (PP-OCRv4 from its wheel) reads the photo --------------------
    # Score in [0, 1] from where text sits, what it says and whether it repeats
    # (scenery.curation.ocr_evidence); text in the middle of the frame alone never fails.
    ocr_watermark: bool = True
    ocr_max_side: int = Field(default=1024, ge=320, le=4096)  # long side of the view it reads
    ocr_threads: int | None = Field(default=None, ge=1)  # onnxruntime threads; None: all cores
    ocr_watermark_threshold: float = Field(default=0.8, ge=0, le=1)  # reject at or above
    ocr_watermark_borderline: float = Field(default=0.5, ge=0, le=1)  # queue at or above

    # -- NSFW: NudeNet exposed-body detections and a CLIP zero-shot score ----------------------
    nsfw_nudenet: bool = True
    nsfw_nudenet_threshold: float = Field(default=0.6, ge=0, le=1)
    nsfw_nudenet_borderline: float = Field(default=0.35, ge=0, le=1)
    nsfw_clip: bool = True
    nsfw_clip_threshold: float = Field(default=0.8, ge=0, le=1)
    nsfw_clip_borderline: float = Field(default=0.5, ge=0, le=1)

    # -- admin --------------------------------------------------------------------------------
    # Failed logins lock one user name from one address (never the owner elsewhere): after
    # login_max_failures in a row, for login_lock_seconds, doubling with each further failure
    # up to login_lock_max_seconds. One address trying many names is locked the same way
    # after login_address_max_failures; one name tried from many addresses is locked for
    # everyone, for login_lock_seconds, after login_user_max_failures.
    login_max_failures: int = Field(default=5, ge=1)
    login_lock_seconds: int = Field(default=300, ge=1)
    login_lock_max_seconds: int = Field(default=3600, ge=1)
    login_address_max_failures: int = Field(default=20, ge=1)
    login_user_max_failures: int = Field(default=100, ge=1)
    # How many reverse proxies in front of the app append to X-Forwarded-For/-Proto; their
    # headers give the client's address (the throttle's) and scheme. 0: headers ignored.
    trusted_proxies: int = Field(default=0, ge=0, le=10)
    # An admin session ends at logout, after this long without a request, this long after
    # the login however busy, or when the account's password is set again.
    session_idle_minutes: int = Field(default=60, ge=1)
    session_max_hours: int = Field(default=12, ge=1)
    secure_cookies: bool = False  # set behind HTTPS: session cookies only over TLS
    # Drift alert: two-sample Kolmogorov-Smirnov statistic between the reference set's and the
    # last 7 days' gallery-fit scores, and the change in acceptance rate (published share of
    # decided candidates) between the last 7 days and the 28 before them.
    drift_ks_threshold: float = Field(default=0.35, gt=0, le=1)
    drift_min_candidates: int = Field(default=20, ge=1)
    acceptance_change_threshold: float = Field(default=0.25, gt=0, le=1)

    # -- task queue, workers and the schedule -------------------------------------------------
    # Unset: a SQLite file of its own in the data dir (one machine). redis://host:port/db for
    # several machines (every web server and worker names the same one).
    queue_url: str | None = None
    queue_name: str = "scenery"  # one deployment's tasks; several may share a Redis
    queue_poll_seconds: float = Field(default=1.0, gt=0)  # longest idle wait (SQLite queue)
    scheduler_tick_seconds: float = Field(default=60.0, gt=0)  # how often due feeds are claimed
    lease_seconds: float = Field(default=300.0, gt=0)  # a run's claim; renewed while it runs
    worker_threads: int = Field(default=2, ge=1)  # tasks one worker runs at once
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    worker_shutdown_seconds: float = Field(default=30.0, ge=0)  # SIGTERM: wait for the task
    # Workers run at a lower CPU priority, so on a shared machine web requests come first.
    worker_nice: int = Field(default=10, ge=0, le=19)

    # -- backups (scenery.backup) ---------------------------------------------------------------
    # Unset: no periodic backup. Set: the scheduling worker writes one here whenever the newest
    # is older than the interval, then keeps only the newest ``backup_keep``.
    backup_dir: Path | None = None
    backup_interval_hours: float = Field(default=24.0, gt=0)
    backup_keep: int = Field(default=7, ge=1)

    # The production server (scenery.serving) closes a connection that sends and reads
    # nothing for this long, so clients that vanished mid-request do not pile up.
    client_idle_seconds: float = Field(default=60.0, gt=0)

    # Load the model and open the index when the web app starts (in the background, or under
    # the production server before it accepts a connection), so no search waits for them.
    warm_up: bool = True

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL, like https://photos.example.org")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a scheme, host and optional path, without ?, # or user")
        return value.rstrip("/")

    @field_validator("clip_device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto" and value != "cpu" and not value.startswith(("cuda", "mps")):
            raise ValueError("must be auto, cpu, cuda[:N] or mps")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read init arguments first, then the environment, then the TOML file it names."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = env_settings().get("config_file") or init_settings().get("config_file")
        if toml_path:
            path = Path(toml_path)
            if not path.is_file():
                raise ConfigError(f"SCENERY_CONFIG_FILE points at {path}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @cached_property
    def root(self) -> Path:
        """The data directory as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        return self.database_url or f"sqlite:///{self.root / 'scenery.db'}"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def onnx_exports_dir(self) -> Path:
        return self.onnx_dir.expanduser().resolve() if self.onnx_dir else self.models_dir / "onnx"

    @property
    def downloads_dir(self) -> Path:
        """Where ingest runs download to, one folder per run (named by its lease token)."""
        return self.root / "tmp" / "downloads"

    def ensure_dirs(self) -> None:
        """Create the data directory tree."""
        for path in (self.root, self.images_dir, self.thumbs_dir, self.index_dir, self.models_dir):
            path.mkdir(parents=True, exist_ok=True)

    def flask_secret(self) -> str:
        """The configured secret key, or one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.root / "secret_key"
        if not path.exists():
            # Several server workers may start at once: each writes its own temporary file and
            # links it into place; the first link wins and every worker reads the winner's key.
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".secret_key.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as tmp:  # mkstemp makes it 0600
                    tmp.write(secrets.token_hex(32))
                os.link(tmp_name, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp_name)
        return path.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    try:
        return Settings(**overrides)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"invalid settings: {exc}") from exc
