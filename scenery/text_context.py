"""Exact short-context CLIP text encoding.

CLIP's text transformer attends causally (each position sees only the positions before it) and
pools its output at the end-of-text token, the highest token id. Positions after the last
end-of-text token in a batch can therefore not change any pooled output: running the
transformer over the first ``n`` positions only, with the positional embedding and the causal
mask cut to ``n``, gives the embedding of the full 77-position context (up to float rounding)
at a fraction of the cost for a five-word query. Models whose text tower pools elsewhere or
attends both ways are left to their own ``encode_text``.
"""

from __future__ import annotations

from typing import Any

import torch


def short_context_supported(model: Any) -> bool:
    """Whether ``model``'s text tower is open_clip's built-in causal, end-token-pooled one."""
    from open_clip.model import CLIP

    if not isinstance(model, CLIP) or model.text_pool_type != "argmax":
        return False
    mask = getattr(model, "attn_mask", None)
    context = int(model.context_length)
    if mask is None or tuple(mask.shape) != (context, context):
        return False
    if tuple(model.positional_embedding.shape[:1]) != (context,):
        return False
    causal = torch.full((context, context), float("-inf")).triu(1)
    return bool(torch.equal(mask.float().cpu(), causal))


def used_length(tokens: torch.Tensor) -> int:
    """Positions a batch needs: up to and including its last end-of-text token."""
    return int(tokens.argmax(dim=-1).max()) + 1


def encode_text_short(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` over only the positions the batch uses."""
    return encode_text_prefix(model, tokens[:, : used_length(tokens)])


def encode_text_prefix(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """The text tower over ``tokens`` as given (every row's end-of-text token inside them).

    The body of open_clip's ``CLIP.encode_text`` with the positional embedding and the causal
    mask cut to the tokens' length; the ONNX export traces this with that length dynamic."""
    from open_clip.transformer import text_global_pool

    n = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:n].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type)
    projection = model.text_projection
    if projection is None:
        return x
    if isinstance(projection, torch.nn.Linear):
        return projection(x)
    return x @ projection
