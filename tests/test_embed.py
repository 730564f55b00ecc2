"""The open_clip embedder: normalised float32, deterministic tiny model, clear load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenery.embed import Embedder, OpenClipEmbedder, model_space_name
from scenery.errors import ModelLoadError
from scenery.imaging import thumbnail


def test_tiny_model_satisfies_the_protocol(tiny_embedder: OpenClipEmbedder) -> None:
    assert isinstance(tiny_embedder, Embedder)
    assert tiny_embedder.name == "tiny-test"
    assert tiny_embedder.dim == 64


def test_outputs_are_unit_float32(tiny_embedder: OpenClipEmbedder, photos: list[Path]) -> None:
    images = [Image.open(p) for p in photos[:3]]
    vectors = tiny_embedder.encode_images(images)
    texts = tiny_embedder.encode_text(["a mountain lake", "city at night"])
    for array, rows in ((vectors, 3), (texts, 2)):
        assert array.dtype == np.float32 and array.shape == (rows, 64)
        assert np.allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_tiny_model_is_the_same_in_every_instance(
    tiny_embedder: OpenClipEmbedder, photos: list[Path]
) -> None:
    fresh = OpenClipEmbedder("tiny-test", "none")
    image = [Image.open(photos[0])]
    assert np.allclose(fresh.encode_images(image), tiny_embedder.encode_images(image), atol=1e-6)


def test_batching_does_not_change_results(photos: list[Path]) -> None:
    images = [Image.open(p) for p in photos[:5]]
    one_by_one = OpenClipEmbedder("tiny-test", "none", batch_size=1).encode_images(images)
    batched = OpenClipEmbedder("tiny-test", "none", batch_size=4).encode_images(images)
    assert np.allclose(one_by_one, batched, atol=1e-5)


def test_loads_weights_from_a_local_checkpoint(
    tmp_path: Path, tiny_embedder: OpenClipEmbedder, photos: list[Path]
) -> None:
    import open_clip

    torch.manual_seed(12345)  # other weights than the built-in seed
    model = open_clip.create_model("tiny-test", pretrained=None)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    local = OpenClipEmbedder("tiny-test", str(checkpoint))
    image = [thumbnail(Image.open(photos[0]).convert("RGB"), 400)]  # a grid thumbnail
    expected = model.eval().encode_image(local_preprocess(image[0]))
    expected = torch.nn.functional.normalize(expected, dim=-1).detach().numpy()
    assert local.name == "tiny-test/tiny.pt"
    assert np.allclose(local.encode_images(image), expected, atol=1e-5)
    assert not np.allclose(local.encode_images(image), tiny_embedder.encode_images(image))


def local_preprocess(image: Image.Image) -> torch.Tensor:
    import open_clip

    _, _, preprocess = open_clip.create_model_and_transforms("tiny-test", pretrained=None)
    return preprocess(image.convert("RGB")).unsqueeze(0)


def test_missing_checkpoint_file_says_what_to_set() -> None:
    with pytest.raises(ModelLoadError, match="SCENERY_CLIP_PRETRAINED"):
        OpenClipEmbedder("ViT-B-32", "/nonexistent/open_clip_model.safetensors").load()


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="unknown CLIP model 'ViT-Nope'"):
        OpenClipEmbedder("ViT-Nope", "x").load()


def test_embedding_spaces_are_named_by_model_and_weights() -> None:
    assert model_space_name("ViT-B-32", "laion2b_s34b_b79k") == "ViT-B-32/laion2b_s34b_b79k"
    assert model_space_name("ViT-B-32", "/w/vit.safetensors") == "ViT-B-32/vit.safetensors"
    assert model_space_name("tiny-test", "laion2b_s34b_b79k") == "tiny-test"
