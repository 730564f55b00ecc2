"""The ``scenery`` command: set up, import, serve and maintain a gallery."""

from __future__ import annotations

import getpass
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from scenery import __version__
from scenery.cli_admin import COMMANDS as ADMIN_COMMANDS
from scenery.cli_backup import COMMANDS as BACKUP_COMMANDS
from scenery.cli_curation import COMMANDS as CURATION_COMMANDS
from scenery.cli_support import console, context, domain_errors, progress_bar
from scenery.cli_worker import COMMANDS as WORKER_COMMANDS
from scenery.config import Settings, load_settings
from scenery.context import Context
from scenery.db import transaction
from scenery.errors import SceneryError
from scenery.importer import Importer, discover


@click.group()
@click.version_option(__version__, prog_name="scenery")
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
@click.pass_context
def main(click_ctx: click.Context, verbose: bool) -> None:
    """Scenery: a self-hosted photo gallery that curates itself."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except SceneryError as exc:
        raise click.ClickException(str(exc)) from exc
    click_ctx.obj = {"settings": settings}
    click_ctx.call_on_close(
        lambda: click_ctx.obj.get("context") and click_ctx.obj["context"].close()
    )


@main.command()
@click.pass_obj
@domain_errors
def init(obj: dict[str, Any]) -> None:
    """Create the data directory and bring the database schema up to date."""
    ctx = context(obj)
    click.echo(f"data dir: {ctx.settings.root}")
    click.echo(f"database: {ctx.engine.url.render_as_string(hide_password=True)}")


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--no-publish", is_flag=True, help="Queue the images for review instead.")
@click.pass_obj
@domain_errors
def import_(obj: dict[str, Any], paths: tuple[Path, ...], no_publish: bool) -> None:
    """Import image files and folders (recursively): jpg, png, webp, gif, bmp, tiff."""
    ctx = context(obj)
    files = discover(paths)
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("importing", total=len(files))
        importer = Importer(ctx, publish=not no_publish, on_file=lambda _p: progress.advance(task))
        report = importer.run(files)
    elapsed = time.perf_counter() - started
    for path, reason in report.failed:
        click.echo(f"failed: {path}: {reason}", err=True)
    for path, image_id in report.duplicates:
        click.echo(f"duplicate: {path} (already stored as image {image_id})", err=True)
    verb = "queued" if no_publish else "imported"
    rate = len(report.imported) / elapsed if elapsed else 0.0
    click.echo(
        f"{verb} {len(report.imported)}, duplicates {len(report.duplicates)}, "
        f"failed {len(report.failed)} ({len(files)} files in {elapsed:.1f} s, {rate:.1f} images/s)"
    )
    if report.failed:
        _reason_table(Counter(reason for _, reason in report.failed))


def _reason_table(reasons: Counter[str]) -> None:
    table = Table("failure reason", "files")
    for reason, count in reasons.most_common():
        table.add_row(reason, str(count))
    console.print(table)


@main.command()
@click.pass_obj
@domain_errors
def reindex(obj: dict[str, Any]) -> None:
    """Rebuild the vector index from the embeddings in the database."""
    ctx = context(obj)
    started = time.perf_counter()
    count = ctx.index.rebuild()
    snapshot = ctx.index.save()
    click.echo(f"indexed {count} images in {time.perf_counter() - started:.1f} s -> {snapshot}")


def _cli_user() -> str:
    """Who a CLI decision is recorded as: the login name, where the system knows one."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def _review_command(name: str, help_text: str) -> None:
    """publish / unpublish / delete: the admin pages' decisions (``scenery.review``), so a
    change made here records who made it and feeds back the same way."""

    @main.command(name, help=help_text)
    @click.argument("image_ids", nargs=-1, required=True, type=int)
    @click.option(
        "--yes",
        is_flag=True,
        hidden=name != "publish",
        help="Publish without asking, after running any checks an image skipped.",
    )
    @click.pass_obj
    @domain_errors
    def command(obj: dict[str, Any], image_ids: tuple[int, ...], yes: bool) -> None:
        from scenery import review

        ctx = context(obj)
        user = _cli_user()
        files: list[tuple[str, str]] = []
        if name == "publish":
            _run_skipped_checks(ctx, image_ids, yes)
        with transaction(ctx.sessions) as session:
            if name == "publish":
                review.approve(session, image_ids, user)
            elif name == "unpublish":
                review.unpublish(session, image_ids, user)
            else:
                files = review.delete(session, image_ids, user)
        review.remove_files(ctx.storage, files)
        ctx.index.refresh(force=True)
        ctx.index.save()
        click.echo(f"{name}: {', '.join(map(str, image_ids))}")


def _run_skipped_checks(ctx: Context, image_ids: tuple[int, ...], yes: bool) -> None:
    """As "Publish anyway" does: run the checks (NSFW, watermark, OCR) a cheaper filter's
    rejection skipped, show their verdicts, and ask before going on (``--yes``: do not ask)."""
    from scenery.curation.recheck import run_missing_checks

    checked = run_missing_checks(ctx, list(image_ids))
    for item in checked:
        click.echo(f"image {item.image_id} ({item.title}): checks it had skipped, run now")
        for result in item.results:
            click.echo(f"  {result.filter:16} {result.verdict.value:10} {result.reason}")
    if checked and not yes:
        click.confirm("Publish anyway?", abort=True)


_review_command("publish", "Publish images by id (queued, rejected or unpublished).")
_review_command("unpublish", "Take images out of the gallery (back to the queue).")
_review_command("delete", "Delete images: gone from gallery and search, files removed.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--prod",
    is_flag=True,
    help="Serve with gunicorn (gevent workers: slow clients hold no worker, see "
    "scenery/serving.py) instead of the development server.",
)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers.")
@click.option(
    "--with-worker",
    is_flag=True,
    help="Also run one task worker (with the scheduler) as a child process, stopped with the "
    "server: the one-machine setup.",
)
@click.pass_obj
@domain_errors
def serve(
    obj: dict[str, Any], host: str, port: int, prod: bool, workers: int, with_worker: bool
) -> None:
    """Run the web gallery (and, with --with-worker, the embedded worker)."""
    context(obj)  # migrate before serving
    scenery_bin = Path(sys.executable).with_name("scenery")
    if prod:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        args = [str(gunicorn), "--config", "python:scenery.serving"]
        args += ["--bind", f"{host}:{port}", "--workers", str(workers)]
        args += ["--access-logfile", "-", "web.wsgi:app"]
        if not with_worker:
            os.execv(str(gunicorn), args)
        with child([str(scenery_bin), "worker"]), child(args) as web:
            web.wait()
        return
    from web import create_app

    settings: Settings = obj["settings"]
    app = create_app(settings)
    if not with_worker:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
        return
    with child([str(scenery_bin), "worker"]):
        app.run(host=host, port=port, threaded=True, use_reloader=False)


@contextmanager
def child(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run a child process for as long as the block runs; SIGTERM it (gracefully) after."""
    process = subprocess.Popen(command)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield process
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@main.command()
@click.option("--fix", is_flag=True, help="Remove orphan files and rebuild a wrong index.")
@click.pass_obj
@domain_errors
def doctor(obj: dict[str, Any], fix: bool) -> None:
    """Check that database, files and index agree; exit 1 if they do not."""
    from scenery.doctor import examine, repair

    ctx = context(obj)
    findings = examine(ctx)
    if findings.ok:
        click.echo("ok: database, files and index agree")
        return
    for line in findings.lines():
        click.echo(line)
    if not fix:
        raise SystemExit(1)
    repair(ctx, findings)
    click.echo("repaired" if examine(ctx).ok else "some problems remain")


@main.command()
@click.option("--subreddit", "subreddits", multiple=True, required=True, help="Repeatable.")
@click.option(
    "--listing",
    "sort",
    default="new",
    show_default=True,
    type=click.Choice(["new", "hot", "top", "rising"]),
)
@click.option(
    "--time",
    "time_filter",
    default=None,
    type=click.Choice(["hour", "day", "week", "month", "year", "all"]),
    help="For --listing top.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--dry-run", is_flag=True, help="List and resolve only: download and store nothing.")
@click.pass_obj
@domain_errors
def ingest(
    obj: dict[str, Any],
    subreddits: tuple[str, ...],
    sort: str,
    time_filter: str | None,
    limit: int,
    dry_run: bool,
) -> None:
    """Pull posts from subreddits and publish, queue or reject their images."""
    from ingest.runner import run_ingest

    ctx = context(obj)
    with progress_bar() as progress:
        task = progress.add_task("posts", total=None)

        def advance(stage: str, n: int) -> None:
            if stage == "candidates-total":
                progress.update(task, description="images", total=n, completed=0)
            else:
                progress.advance(task, n)

        summary = run_ingest(ctx, subreddits, sort, time_filter, limit, dry_run, advance)
    Console().print(summary.table())  # the result goes to stdout; progress went to stderr
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)
    if summary.nothing_fetched:
        raise SystemExit(1)


for _command in (*CURATION_COMMANDS, *ADMIN_COMMANDS, *WORKER_COMMANDS, *BACKUP_COMMANDS):
    main.add_command(_command)
