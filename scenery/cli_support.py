"""What every ``scenery`` command shares: the console, errors, the context, progress bars."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from scenery.context import Context
from scenery.errors import SceneryError

F = TypeVar("F", bound=Callable[..., Any])
console = Console(stderr=True)


def domain_errors(func: F) -> F:
    """Turn foreseeable SceneryErrors into a one-line CLI error instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SceneryError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def context(obj: dict[str, Any]) -> Context:
    if "context" not in obj:
        ctx = Context(obj["settings"])
        ctx.migrate()
        obj["context"] = ctx
    return obj["context"]  # type: ignore[no-any-return]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
