"""Charts of the curation models and decisions, rendered to PNG (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt: Any, fig: Any, path: Path | BinaryIO) -> Path | BinaryIO:
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def plot_bic(
    bic: Sequence[dict[str, Any]], chosen: tuple[int, str], path: Path | BinaryIO
) -> Path | BinaryIO:
    """The BIC of every fit tried, per covariance type, the chosen one marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for covariance in sorted({row["covariance"] for row in bic}):
        rows = sorted(
            (r for r in bic if r["covariance"] == covariance), key=lambda r: r["components"]
        )
        ax.plot(
            [r["components"] for r in rows], [r["bic"] for r in rows], marker="o", label=covariance
        )
    best = next(r for r in bic if (r["components"], r["covariance"]) == chosen)
    ax.scatter(
        [best["components"]],
        [best["bic"]],
        s=160,
        facecolors="none",
        edgecolors="red",
        label=f"chosen: {chosen[0]} {chosen[1]}",
    )
    ax.set_xlabel("components")
    ax.set_ylabel("BIC (lower is better)")
    ax.legend()
    return _finish(plt, fig, path)


def plot_scores(
    reference: np.ndarray,
    candidates: np.ndarray,
    threshold: float,
    borderline: float,
    path: Path | BinaryIO,
) -> Path | BinaryIO:
    """Histograms of gallery-fit scores: held-out references against recent candidates."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    reference, candidates = reference[np.isfinite(reference)], candidates[np.isfinite(candidates)]
    values = np.concatenate([reference, candidates])
    spread = len(values) and float(values.max()) > float(values.min())
    bins = np.linspace(float(values.min()), float(values.max()), 40) if spread else 10
    ax.hist(reference, bins=bins, alpha=0.6, density=True, label=f"reference ({len(reference)})")
    if len(candidates):
        ax.hist(
            candidates, bins=bins, alpha=0.6, density=True, label=f"candidates ({len(candidates)})"
        )
    ax.axvline(threshold, color="green", linestyle="--", label="pass")
    ax.axvline(borderline, color="orange", linestyle=":", label="borderline")
    ax.set_xlabel("log-likelihood")
    ax.legend()
    return _finish(plt, fig, path)


def plot_daily(days: Sequence[Any], path: Path | BinaryIO) -> Path | BinaryIO:
    """Decisions per day (``monitoring.DailyCounts``) as stacked bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    labels = [d.day.strftime("%m-%d") for d in days]
    bottom = np.zeros(len(days))
    colours = {"published": "#3a7d44", "queued": "#d9a21b", "rejected": "#b23a48", "failed": "#888"}
    for decision, colour in colours.items():
        values = np.array([d.decisions.get(decision, 0) for d in days], dtype=float)
        if values.any():
            ax.bar(labels, values, bottom=bottom, color=colour, label=decision)
            bottom += values
    if not days:
        ax.text(0.5, 0.5, "no decisions yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("candidates")
    if days:
        ax.legend(loc="upper left", fontsize="small")
    return _finish(plt, fig, path)
