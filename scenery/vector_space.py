"""Embeddings of one vector space only: a runtime whose embeddings differ is not mixed in.

ONNX int8 embeddings differ from torch's and fp32 ONNX's by more than float rounding, so they
are stored under their own name (``<model>/<weights>+int8``) with their own index. A gallery
embedded one way and then opened the other way would search an empty space; this says so.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scenery.errors import ModelLoadError
from scenery.models import Embedding

INT8_SUFFIX = "+int8"


def sibling_space(name: str) -> str:
    """The same model and weights under the other runtime family (int8 <-> fp32)."""
    return name.removesuffix(INT8_SUFFIX) if name.endswith(INT8_SUFFIX) else name + INT8_SUFFIX


def refuse_other_runtime(session: Session, name: str) -> None:
    """Raise if the gallery's embeddings are all of this model under the other runtime."""
    mine = session.scalar(select(func.count()).where(Embedding.model == name))
    if mine:
        return
    other = sibling_space(name)
    theirs = session.scalar(select(func.count()).where(Embedding.model == other))
    if not theirs:
        return
    chosen, used = (
        ("onnx-int8", "torch or onnx")
        if name.endswith(INT8_SUFFIX)
        else ("torch or onnx", "onnx-int8")
    )
    raise ModelLoadError(
        f"this gallery's {theirs} embeddings were made with SCENERY_CLIP_RUNTIME={used} "
        f"({other}); {chosen} embeddings differ from those by more than float rounding and are "
        f"kept apart, so a search would find none of them. Set SCENERY_CLIP_RUNTIME back to "
        f"{used}, or start a new gallery with {chosen}."
    )
