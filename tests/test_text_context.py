"""Short-context text encoding gives the full-context embedding (scenery.text_context)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import open_clip
import pytest
import torch

from scenery.embed import OpenClipEmbedder
from scenery.text_context import encode_text_short, short_context_supported, used_length

TOLERANCE = 1e-5  # float rounding of a different summation length; measured ~3e-6


def _random_model(name: str) -> torch.nn.Module:
    torch.manual_seed(11)
    model = open_clip.create_model(name, pretrained=None)
    return model.eval()


@pytest.fixture(scope="module", params=["tiny-test", "ViT-B-32"])
def model(request: pytest.FixtureRequest) -> Iterator[torch.nn.Module]:
    OpenClipEmbedder("tiny-test", "none")._load()  # registers the built-in tiny config
    yield _random_model(request.param)


def _tokens_of_length(n: int, context: int = 77, seed: int = 0) -> torch.Tensor:
    """One row of ``n`` tokens (start and end of text included), zero-padded to the context."""
    rng = np.random.default_rng([seed, n])
    row = torch.zeros(context, dtype=torch.long)
    row[0] = 49406
    row[1 : n - 1] = torch.from_numpy(rng.integers(1, 49405, n - 2))
    row[n - 1] = 49407
    return row


def _full(model: torch.nn.Module, tokens: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model.encode_text(tokens).numpy()  # type: ignore[no-any-return, operator]


def _short(model: torch.nn.Module, tokens: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return encode_text_short(model, tokens).numpy()


def test_every_query_length_encodes_as_the_full_context(model: torch.nn.Module) -> None:
    assert short_context_supported(model)
    tokens = torch.stack([_tokens_of_length(n) for n in range(2, 78)])
    worst = max(
        float(np.abs(_short(model, row[None]) - _full(model, row[None])).max()) for row in tokens
    )
    assert worst < TOLERANCE


def test_mixed_length_batches_encode_as_the_full_context(model: torch.nn.Module) -> None:
    lengths = [2, 77, 5, 30, 3, 12, 77, 40]
    tokens = torch.stack([_tokens_of_length(n, seed=1) for n in lengths])
    short, full = _short(model, tokens), _full(model, tokens)
    assert np.abs(short - full).max() < TOLERANCE
    # each row of the batch equals that row encoded alone
    for i in range(len(lengths)):
        assert np.abs(short[i] - _short(model, tokens[i : i + 1])[0]).max() < TOLERANCE


def test_real_queries_through_the_tokenizer(model: torch.nn.Module) -> None:
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    queries = ["a", "misty lake at dawn", "word " * 200, "x <end_of_text> trailing words", ""]
    tokens = tokenizer(queries)
    assert used_length(tokens) == 77  # the overlong query fills the context
    assert np.abs(_short(model, tokens) - _full(model, tokens)).max() < TOLERANCE
    short_only = tokenizer(["misty lake at dawn"])
    assert used_length(short_only) == 6


def test_a_tower_that_is_not_causal_or_pools_elsewhere_is_not_cut(
    model: torch.nn.Module,
) -> None:
    bidirectional = copy.deepcopy(model)
    bidirectional.attn_mask = torch.zeros_like(bidirectional.attn_mask)
    pooled_last = copy.deepcopy(model)
    pooled_last.text_pool_type = "last"
    assert not short_context_supported(bidirectional)
    assert not short_context_supported(pooled_last)
    # and for such a tower the cut would indeed change the answer: the check matters
    tokens = _tokens_of_length(6)[None]
    assert np.abs(_short(bidirectional, tokens) - _full(bidirectional, tokens)).max() > 1e-3


def test_the_embedder_encodes_text_the_same_with_and_without_the_short_context() -> None:
    short = OpenClipEmbedder("tiny-test", "none", short_context=True)
    full = OpenClipEmbedder("tiny-test", "none", short_context=False)
    queries = ["red", "a long query about a mountain lake at dawn with fog", "x " * 100]
    assert np.abs(short.encode_text(queries) - full.encode_text(queries)).max() < TOLERANCE
    assert short._short is True and full._short is False
