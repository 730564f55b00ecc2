"""``scenery backup`` and ``scenery restore``: a whole gallery into a folder and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from scenery.cli_support import context, domain_errors, progress_bar


def _mib(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB"


@click.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--keep",
    type=click.IntRange(1),
    default=None,
    help="Afterwards delete all but the newest N backups in DEST.",
)
@click.pass_obj
@domain_errors
def backup(obj: dict[str, Any], dest: Path, keep: int | None) -> None:
    """Write a consistent backup of the gallery into DEST/scenery-<time>, while it runs."""
    from scenery.backup import prune_backups, write_backup

    ctx = context(obj)
    with progress_bar() as progress:
        task = progress.add_task("images", total=None)
        report = write_backup(
            ctx,
            dest,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.images.items()))
    click.echo(f"backup: {report.path}")
    click.echo(
        f"images: {counts or 'none'}; {report.files} files, {_mib(report.bytes)} "
        f"({report.linked} originals linked from the previous backup) in "
        f"{sum(report.seconds.values()):.1f} s"
    )
    if report.vanished:
        click.echo(f"deleted while the backup ran (kept deleted): {report.vanished}")
    if report.missing:
        click.echo(f"warning: originals missing from the data dir: {report.missing}", err=True)
    if keep is not None:
        for path in prune_backups(dest.expanduser().resolve(), keep):
            click.echo(f"deleted old backup {path}")


@click.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Replace the gallery of a data dir and database that are not empty.",
)
@click.option("--check", is_flag=True, help="Only verify the backup's files; restore nothing.")
@click.pass_obj
@domain_errors
def restore(obj: dict[str, Any], source: Path, force: bool, check: bool) -> None:
    """Restore a backup folder into this data dir and database (empty unless --force)."""
    from scenery.restore import restore_backup, verify_backup

    with progress_bar() as progress:
        task = progress.add_task("files", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if check:
            manifest = verify_backup(source, on_progress=advance)
            click.echo(f"ok: {len(manifest.files)} files and the database match the manifest")
            return
        report = restore_backup(source, obj["settings"], force=force, on_progress=advance)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.images.items()))
    click.echo(f"restored: {counts or 'no images'}; {report.files} files, {_mib(report.bytes)}")
    click.echo(f"schema migrated from {report.revision}; index rebuilt: {report.indexed} images")
    click.echo(f"in {sum(report.seconds.values()):.1f} s")
    if report.findings.ok:
        click.echo("ok: database, files and index agree")
        return
    for line in report.findings.lines():
        click.echo(line)
    raise SystemExit(1)


COMMANDS = [backup, restore]
