"""Synthetic CLIP-like embeddings for bench/search.py: image-like vectors in clusters and
text-like vectors across the modality gap (see ``World``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass(frozen=True)
class World:
    """A fixed random "semantic world" from which image-like and text-like vectors are drawn.

    Real CLIP image embeddings are not isotropic noise (on which HNSW recall collapses): they share
    a common offset, fall into topics and sub-topics of very uneven size, and vary within a topic
    along a few directions only (low intrinsic dimension). The generator mimics that. Before
    normalisation an image vector is the sum of

    * ``sqrt(0.30) * mean``: one direction shared by every image (CLIP's common offset);
    * ``sqrt(0.10) * super``: one of 24 super-cluster directions ("landscapes", "people", ...);
    * ``sqrt(0.25) * centre``: one of 384 cluster directions, each under a random super-cluster,
      chosen with log-normal weights (sigma 1), so some topics are far larger than others;
    * ``sqrt(0.30) * basis @ z``: variation inside the cluster, in a random subspace of
      rank 24 per cluster with a power-law spectrum (variance of component i ~ 1/i, so a local
      intrinsic dimension of ~10);
    * ``sqrt(0.05) * noise``: a little isotropic noise over all dimensions.

    All directions are random unit vectors, so nearly orthogonal in 512-d. The result is
    L2-normalised. With these weights two random images have cosine ~0.3, two images of one
    cluster ~0.65, and an image's nearest neighbour in a 100k collection ~0.85, in line with
    CLIP ViT-B/32 (random pairs 0.2-0.5, near neighbours 0.8-0.95).

    A text-like vector is ``sqrt(0.84) * gap + sqrt(0.045) * mean + sqrt(0.065) * semantic +
    sqrt(0.05) * noise``, normalised, where ``gap`` is a
    direction orthogonal to the image mean (the modality gap: CLIP text and image embeddings live
    in two separate cones) and ``semantic`` is the direction of one cluster's content (its
    super-cluster and centre plus one draw of its in-cluster variation). It scores highest against
    the images of its cluster, but only at cosine ~0.3 (unrelated images ~0.12), as CLIP text
    queries do.
    """

    mean: np.ndarray
    gap: np.ndarray
    supers: np.ndarray
    parent: np.ndarray
    centres: np.ndarray
    weights: np.ndarray
    bases: np.ndarray
    spectrum: np.ndarray

    N_SUPER = 24
    N_CLUSTERS = 384
    RANK = 24
    SPECTRUM_DECAY = 1.0
    MEAN_VAR = 0.30
    SUPER_VAR = 0.10
    CENTRE_VAR = 0.25
    LOW_RANK_VAR = 0.30
    ISO_VAR = 0.05
    TEXT_GAP = 0.84
    TEXT_MEAN = 0.045
    TEXT_SEM = 0.065
    TEXT_NOISE = 0.05


def make_world(dim: int, rng: np.random.Generator) -> World:
    """Draw the shared directions, clusters and in-cluster subspaces."""
    mean = unit(rng.standard_normal(dim))
    gap = rng.standard_normal(dim)
    gap = unit(gap - (gap @ mean) * mean)
    parent = rng.integers(0, World.N_SUPER, World.N_CLUSTERS)
    weights = rng.lognormal(0.0, 1.0, World.N_CLUSTERS)
    bases = rng.standard_normal((World.N_CLUSTERS, dim, World.RANK)) / np.sqrt(dim)
    spectrum = np.arange(1, World.RANK + 1) ** (-World.SPECTRUM_DECAY / 2)
    return World(
        mean=mean,
        gap=gap,
        supers=unit(rng.standard_normal((World.N_SUPER, dim))),
        parent=parent,
        centres=unit(rng.standard_normal((World.N_CLUSTERS, dim))),
        weights=weights / weights.sum(),
        bases=bases.astype(np.float32),
        spectrum=(spectrum / np.linalg.norm(spectrum)).astype(np.float32),
    )


def _in_cluster(world: World, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of in-cluster variation (norm ~1) per row, in each row's cluster subspace."""
    z = rng.standard_normal((len(clusters), World.RANK)).astype(np.float32) * world.spectrum
    out = np.empty((len(clusters), world.mean.shape[0]), np.float32)
    for cluster in np.unique(clusters):
        rows = clusters == cluster
        out[rows] = z[rows] @ world.bases[cluster].T
    return out


def _topic(world: World, clusters: np.ndarray) -> np.ndarray:
    """Super-cluster plus cluster direction of each row's cluster."""
    return (
        np.sqrt(World.SUPER_VAR) * world.supers[world.parent[clusters]]
        + np.sqrt(World.CENTRE_VAR) * world.centres[clusters]
    )


def _noise(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Isotropic gaussian rows of norm ~1."""
    return rng.standard_normal((n, dim)) / np.sqrt(dim)


def image_like(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors distributed like CLIP image embeddings."""
    dim = world.mean.shape[0]
    clusters = rng.choice(World.N_CLUSTERS, n, p=world.weights)
    x = (
        np.sqrt(World.MEAN_VAR) * world.mean
        + _topic(world, clusters)
        + np.sqrt(World.LOW_RANK_VAR) * _in_cluster(world, clusters, rng)
        + np.sqrt(World.ISO_VAR) * _noise(n, dim, rng)
    )
    return unit(x).astype(np.float32)


def text_like(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors placed like CLIP text embeddings: on topic, across the modality gap."""
    dim = world.mean.shape[0]
    clusters = rng.choice(World.N_CLUSTERS, n, p=world.weights)
    semantic = unit(
        _topic(world, clusters) + np.sqrt(World.LOW_RANK_VAR) * _in_cluster(world, clusters, rng)
    )
    t = (
        np.sqrt(World.TEXT_GAP) * world.gap
        + np.sqrt(World.TEXT_MEAN) * world.mean
        + np.sqrt(World.TEXT_SEM) * semantic
        + np.sqrt(World.TEXT_NOISE) * _noise(n, dim, rng)
    )
    return unit(t).astype(np.float32)
