"""Domain errors. The CLI and the web app translate them at their edges."""


class SceneryError(Exception):
    """Base class for foreseeable problems a user can act on."""


class ConfigError(SceneryError):
    """Settings are invalid or inconsistent."""


class ImageRejected(SceneryError):
    """An image file was refused; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelLoadError(SceneryError):
    """The CLIP model or its weights could not be loaded."""


class NotFound(SceneryError):
    """A requested object does not exist (or is not visible)."""


class IndexMismatch(SceneryError):
    """A persisted vector index does not fit the current model or database."""


class CurationError(SceneryError):
    """A curation model cannot be fitted or used (too little data, wrong embedder...)."""


class QueueUnavailable(SceneryError):
    """The task queue (its Redis server, or its SQLite file) cannot take a task now."""
