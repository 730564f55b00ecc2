"""``scenery fit``, ``train watermark``, ``explain`` and ``evaluate``: the curation models.

The model modules (scikit-learn) are imported inside the commands, so other commands start
without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from scenery.cli_support import console, context, domain_errors, progress_bar
from scenery.curation.explain import explain as explain_decisions

if TYPE_CHECKING:
    from scenery.curation.evaluate import Confusion


@click.command()
@click.option("--if-due", is_flag=True, help="Only when the reference set grew enough since.")
@click.pass_obj
@domain_errors
def fit(obj: dict[str, Any], if_due: bool) -> None:
    """Fit the gallery model (PCA + GMM chosen by BIC) on the reference set."""
    from scenery.curation.fitting import fit_gallery_model, refit_if_due

    ctx = context(obj)
    fitted = refit_if_due(ctx) if if_due else fit_gallery_model(ctx)
    if fitted is None:
        click.echo("the gallery model is up to date")
        return
    report, meta = fitted.report, fitted.artifact.meta
    kinds = sorted({r["covariance"] for r in report.bic})
    table = Table("components", *kinds, title="BIC")
    for k in sorted({r["components"] for r in report.bic}):
        row = {r["covariance"]: r["bic"] for r in report.bic if r["components"] == k}
        table.add_row(str(k), *(f"{row[c]:,.0f}" if c in row else "" for c in kinds))
    console.print(table)
    click.echo(
        f"chosen: {report.components} components, {report.covariance} covariance, "
        f"{report.dims} PCA dims ({report.explained_variance:.0%} of variance), "
        f"{meta['n_reference']} reference images ({report.n_train} fitted, "
        f"{len(report.held_out_scores)} held out), {report.seconds:.1f} s\n"
        f"pass at log-likelihood >= {report.model.threshold:.1f} "
        f"({report.pass_share:.0%} of held-out references), queue down to "
        f"{report.model.borderline:.1f} ({report.borderline_share:.0%})\n"
        f"recent candidates scored: {len(fitted.candidate_scores)}\n"
        f"saved: {fitted.artifact.path} (bic.png, scores.png)"
    )


@click.group()
def train() -> None:
    """Train a curation model."""


@train.command()
@click.option("--limit", default=1000, show_default=True, help="Reference images to use at most.")
@click.option("--variants", default=2, show_default=True, help="Synthetic watermarks per image.")
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
@domain_errors
def watermark(obj: dict[str, Any], limit: int, variants: int, seed: int) -> None:
    """Train the watermark detector on synthetic watermarks over reference images."""
    from scenery.curation.gallery_training import train_gallery_watermark

    ctx = context(obj)
    with console.status(f"training on up to {limit} images x {variants} watermarks"):
        trained = train_gallery_watermark(ctx, limit=limit, variants=variants, seed=seed)
    training = trained.training
    click.echo(
        f"held out: precision {training.precision:.3f}, recall {training.recall:.3f}, "
        f"accuracy {training.accuracy:.3f} ({training.n_train} train, {training.n_test} test; "
        f"{trained.positives} admin-labelled watermarks)\nsaved: {trained.artifact.path}"
    )


@click.command()
@click.argument("key")
@click.pass_obj
@domain_errors
def explain(obj: dict[str, Any], key: str) -> None:
    """Show every filter's verdict on an image id, a post id (t3_...) or a candidate (c12)."""
    ctx = context(obj)
    with ctx.sessions() as session:
        found = explain_decisions(session, key)
    for item in found:
        ids = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("candidate", item.candidate_id),
                ("image", item.image_id),
                ("post", item.post),
            )
            if value is not None
        )
        console.print(f"[bold]{item.title}[/bold] ({ids})", markup=True, highlight=False)
        if item.url:
            click.echo(f"  {item.url}")
        click.echo(f"  decision: {item.state}" + (f" - {item.reason}" if item.reason else ""))
        if item.matched_image_id:
            click.echo(f"  matched image: {item.matched_image_id}")
        if item.review:
            click.echo(f"  admin review: {item.review}")
        if not item.filters:
            continue  # imported locally: trusted, no filter ran
        table = Table("filter", "verdict", "score", "reason")
        for r in item.filters:
            score = "" if r.get("score") is None else f"{r['score']:.4g}"
            table.add_row(r["filter"], r["verdict"], score, r["reason"])
        console.print(table)


@click.command("evaluate")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_obj
@domain_errors
def evaluate_(obj: dict[str, Any], root: Path) -> None:
    """Measure the filters on labelled folders: good/ offtopic/ watermark/ nsfw/ duplicate/."""
    from scenery.curation.evaluate import evaluate, labelled_files

    ctx = context(obj)
    total = len(labelled_files(root))
    with progress_bar() as bar:
        task = bar.add_task("evaluating", total=total)
        result = evaluate(ctx, root, lambda n: bar.advance(task, n))
    table = Table("filters for", "precision", "recall", "tp", "fp", "fn", "tn", title="per filter")
    for kind, confusion in result.by_kind.items():
        table.add_row(kind, *_row(confusion))
    table.add_row("overall (not published)", *_row(result.overall))
    console.print(table)
    decisions = Table("label", "published", "queued", "rejected", title="decisions by label")
    for label, counts in result.decisions.items():
        if counts:
            decisions.add_row(label, *(str(counts[d]) for d in ("published", "queued", "rejected")))
    console.print(decisions)
    click.echo(f"{result.images} images evaluated, {len(result.unreadable)} unreadable")
    for path, reason in result.unreadable:
        click.echo(f"  {path}: {reason}")


def _row(confusion: Confusion) -> list[str]:
    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    c = confusion
    return [share(c.precision), share(c.recall), str(c.tp), str(c.fp), str(c.fn), str(c.tn)]


@click.command("retag")
@click.pass_obj
@domain_errors
def retag_(obj: dict[str, Any]) -> None:
    """Tag every image again from the tag vocabulary (after editing it, or a model change)."""
    from scenery.retag import retag

    ctx = context(obj)
    images, given = retag(ctx)
    click.echo(f"retagged {images} images: {given} tags from {ctx.tagger.path}")  # type: ignore[union-attr]


COMMANDS = (fit, train, explain, evaluate_, retag_)
