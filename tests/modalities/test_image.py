"""Image modality: decoding odd files, typed errors, transforms, frozen tiny encoder."""

import time

import fsspec
import pytest
import torch
from media_factory import make_exif_rotated_jpeg, make_image, make_png_header, truncate

from modalities import (
    CheckpointNotFoundError,
    CorruptMediaError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
    build_modality,
)
from modalities.clip import CLIP_MEAN, TinyVisionShape, mean_colour_uint8
from modalities.image import ImageConfig, decode_image, merge_patches, pad_to_square, square_offsets

MEAN = torch.tensor(mean_colour_uint8(), dtype=torch.uint8)
LIMIT = 100_000_000


def tiny_image(**overrides):
    return build_modality("image", {"encoder": "tiny", "image_size": 32, **overrides}, d_model=24)


@pytest.fixture(scope="module")
def modality():
    return tiny_image()


# --- decoding ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, name, left, right",
    [
        ("RGB", "rgb.png", (40, 40, 40), (200, 200, 200)),
        ("L", "grey.png", (40, 40, 40), (200, 200, 200)),
        ("LA", "grey_alpha.png", (40, 40, 40), tuple(MEAN.tolist())),  # right half transparent
        ("RGBA", "rgba.png", (40, 40, 40), tuple(MEAN.tolist())),
        ("RGBA", "rgba.webp", (40, 40, 40), tuple(MEAN.tolist())),
        ("P", "palette.png", (250, 10, 10), tuple(MEAN.tolist())),  # palette index 0 transparent
        ("I;16", "sixteen.png", (0, 0, 0), (255, 255, 255)),  # 65535 -> 255, not clipped
        ("RGB", "photo.jpg", (40, 40, 40), (200, 200, 200)),
    ],
)
def test_modes_become_rgb_uint8(tmp_path, mode, name, left, right):
    media = decode_image(make_image(tmp_path / name, mode, size=(40, 24)), LIMIT)
    assert media.data.dtype == torch.uint8 and media.data.shape == (3, 24, 40)
    assert media.size == (40, 24)
    tolerance = 4 if name.endswith((".jpg", ".webp")) else 0  # lossy formats
    assert (media.data[:, 12, 5].int() - torch.tensor(left)).abs().max() <= tolerance
    assert (media.data[:, 12, 35].int() - torch.tensor(right)).abs().max() <= tolerance


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    media = decode_image(make_image(tmp_path / "cmyk.jpg", "CMYK"), LIMIT)
    assert media.data.shape[0] == 3 and media.data.dtype == torch.uint8
    assert media.data[:, 12, 5].float().mean() < media.data[:, 12, 35].float().mean()


def test_exif_orientation_is_applied_and_size_follows(tmp_path):
    media = decode_image(make_exif_rotated_jpeg(tmp_path / "rotated.jpg", size=(40, 20)), LIMIT)
    assert media.size == (20, 40)
    assert media.data.shape == (3, 40, 20)


def test_format_is_sniffed_not_taken_from_the_extension(tmp_path):
    media = decode_image(make_image(tmp_path / "really_a_png.jpg", "RGB", fmt="PNG"), LIMIT)
    assert media.size == (40, 24)


def test_file_objects_and_fsspec_urls_load(tmp_path):
    path = make_image(tmp_path / "a.png", "RGB")
    with open(path, "rb") as f:
        from_object = decode_image(f, LIMIT)
    with fsspec.open("memory://images/a.png", "wb") as f:
        f.write(path.read_bytes())
    from_url = decode_image("memory://images/a.png", LIMIT)
    assert torch.equal(from_object.data, from_url.data)
    assert from_url.source == "memory://images/a.png"


# --- bad files ----------------------------------------------------------------------------------
def _bad_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("this is text, not an image")
    truncate(make_image(tmp_path / "cut.png", "RGB", size=(200, 200)), keep=0.3)
    truncate(make_image(tmp_path / "cut.jpg", "RGB", size=(200, 200)), keep=0.5)
    return {
        "empty.jpg": CorruptMediaError,
        "notes.jpg": UnsupportedMediaError,
        "cut.png": CorruptMediaError,
        "cut.jpg": CorruptMediaError,
        "missing.png": MediaNotFoundError,
    }


def test_bad_files_raise_typed_errors_naming_the_file(tmp_path):
    for name, error in _bad_files(tmp_path).items():
        with pytest.raises(error) as caught:
            decode_image(str(tmp_path / name), LIMIT)
        assert name in str(caught.value), name


@pytest.mark.parametrize("side", [12_000, 20_000])  # over our limit; over Pillow's own bomb limit
def test_huge_header_fails_fast_without_decoding(tmp_path, side):
    path = make_png_header(tmp_path / "bomb.png", side, side)
    start = time.perf_counter()
    with pytest.raises(MediaTooLargeError, match="bomb.png"):
        decode_image(str(path), LIMIT)
    assert time.perf_counter() - start < 1.0


def test_max_pixels_is_configurable(tmp_path):
    modality = tiny_image(max_pixels=100)
    with pytest.raises(MediaTooLargeError, match="max_pixels=100"):
        modality.load(str(make_image(tmp_path / "a.png", "RGB", size=(20, 10))))


def test_float_images_are_refused(tmp_path):
    path = make_image(tmp_path / "float.tif", "F")
    with pytest.raises(UnsupportedMediaError, match="float.tif"):
        decode_image(str(path), LIMIT)


def test_every_error_is_a_media_error():
    assert all(issubclass(e, MediaError) for e in (CorruptMediaError, UnsupportedMediaError, MediaTooLargeError))


# --- transforms ----------------------------------------------------------------------------------
def test_square_offsets_centre_the_image():
    assert square_offsets(40, 24) == (0, 8, 40)
    assert square_offsets(24, 41) == (8, 0, 41)
    assert square_offsets(30, 30) == (0, 0, 30)


def test_padding_uses_the_mean_colour_around_the_centred_image():
    image = torch.full((3, 2, 6), 7, dtype=torch.uint8)
    square = pad_to_square(image)
    assert square.shape == (3, 6, 6)
    assert torch.equal(square[:, 2:4], image)
    assert torch.equal(square[:, 0, 0], MEAN) and torch.equal(square[:, 5, 5], MEAN)


def test_transform_shape_normalisation_and_determinism(modality, tmp_path):
    media = modality.load(str(make_image(tmp_path / "wide.png", "RGB", size=(64, 32))))
    x = modality.transform(media, train=False)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert x[:, 0, 0].abs().max() < 0.01  # padding is the mean colour: 0 after normalisation
    assert torch.equal(x, modality.transform(media, train=False))
    assert torch.equal(x, modality.transform(media, train=True))  # no crop: boxes stay put


def test_mean_colour_is_clip_mean():
    assert mean_colour_uint8() == tuple(round(c * 255) for c in CLIP_MEAN)


# --- model ---------------------------------------------------------------------------------------
def test_tokens_shapes_and_no_cls(modality):
    assert modality.num_tokens == (32 // 8) ** 2
    features = modality.encode(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 16, 32)  # CLS dropped: 16 patches of the tiny width 32
    assert not features.requires_grad
    assert modality.adapt(features).shape == (2, 16, 24)


def test_special_tokens_and_names(modality):
    assert modality.special_tokens() == ("<im_start>", "<im_patch>", "<im_end>")
    assert (modality.name, modality.record_key, modality.placeholder) == ("image", "image", "<image>")


def test_tiny_encoder_positions_are_2d_sincos_at_the_set_scale():
    positions = tiny_image().encoder.model.embeddings.position_embedding.weight  # (1 + 16, 32)
    assert torch.equal(positions[0], torch.zeros(32))  # CLS
    patches = positions[1:].view(4, 4, 32)  # (row, column, width)
    assert abs(patches.std().item() - TinyVisionShape().position_init_std) < 1e-3
    # The first half encodes the column, the second the row.
    torch.testing.assert_close(patches[0, :, :16], patches[3, :, :16])
    torch.testing.assert_close(patches[:, 0, 16:], patches[:, 3, 16:])
    assert torch.cdist(positions[1:], positions[1:]).add(torch.eye(16)).min() > 0.05  # all distinct


def test_feature_layer_truncates_the_encoder():
    assert len(tiny_image(feature_layer=-2).encoder.model.encoder.layers) == 1
    assert len(tiny_image(feature_layer=-1).encoder.model.encoder.layers) == 2
    with pytest.raises(ValueError, match="feature layer"):
        tiny_image(feature_layer=5)


def test_encoder_is_frozen_through_an_optimizer_step():
    modality = tiny_image()
    modality.train()
    assert not modality.encoder.training
    encoder_before = {k: v.clone() for k, v in modality.encoder.state_dict().items()}
    adapter_before = {k: v.clone() for k, v in modality.adapter.state_dict().items()}
    opt = torch.optim.SGD([p for p in modality.parameters() if p.requires_grad], lr=0.1)
    modality(torch.randn(2, 3, 32, 32)).pow(2).mean().backward()
    opt.step()
    assert all(p.grad is None for p in modality.encoder.parameters())
    assert all(torch.equal(v, modality.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert any(not torch.equal(v, modality.adapter.state_dict()[k]) for k, v in adapter_before.items())


def test_adapter_hidden_size_is_configurable():
    modality = tiny_image(adapter_hidden_size=7)
    assert modality.adapter[0].out_features == 7


def test_merge_patches_concatenates_each_square_in_row_major_order():
    grid, C = 4, 3
    # patch (row, col) holds the value 10 * row + col in every channel
    ids = torch.tensor([10.0 * r + c for r in range(grid) for c in range(grid)])
    merged = merge_patches(ids[None, :, None].expand(1, grid * grid, C), grid, 2)
    assert merged.shape == (1, 4, 4 * C)
    # token 1 is the top-right square: patches (0,2), (0,3), (1,2), (1,3), C channels each
    assert merged[0, 1].tolist() == [v for v in (2.0, 3.0, 12.0, 13.0) for _ in range(C)]
    assert merged[0, 2, ::C].tolist() == [20.0, 21.0, 30.0, 31.0]  # bottom-left square
    assert torch.equal(merge_patches(ids[None, :, None], grid, 1), ids[None, :, None])


def test_adapter_merge_gives_fewer_tokens_from_the_same_features():
    modality = tiny_image(adapter_merge=2)  # 32 px / patch 8: a 4 x 4 grid -> 2 x 2 tokens
    assert modality.num_tokens == 4
    features = modality.encode(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 16, 32)  # the frozen features (and their cache) are unchanged
    assert modality.adapter[0].in_features == 4 * 32
    assert modality.adapt(features).shape == (2, 4, 24)


def test_adapter_merge_must_divide_the_patch_grid():
    with pytest.raises(ValueError, match="adapter_merge=3"):
        tiny_image(adapter_merge=3)


def test_tiny_shape_comes_from_a_recipe_mapping():
    modality = tiny_image(tiny={"patch_size": 16, "hidden_size": 16, "num_layers": 2, "num_heads": 4})
    assert modality.num_tokens == 4
    assert modality.encoder.hidden_size == 16


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"image_size": 0}, "image_size"),
        ({"feature_layer": 0}, "feature_layer"),
        ({"max_pixels": 0}, "max_pixels"),
        ({"adapter_hidden_size": 0}, "adapter_hidden_size"),
        ({"adapter_merge": 0}, "adapter_merge"),
        ({"image_size": 30}, "patch_size"),
        ({"tiny": {"hidden_size": 30, "num_heads": 4}}, "num_heads"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        ImageConfig(**{"encoder": "tiny", "image_size": 32, **overrides})


def test_missing_encoder_names_path_and_recipe_key(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as caught:
        tiny_image(encoder=str(tmp_path / "no_clip_here"))
    message = str(caught.value)
    assert "no_clip_here" in message and "model.modalities.image.encoder" in message


def test_offline_hub_id_fails_at_once():
    start = time.perf_counter()
    with pytest.raises(CheckpointNotFoundError, match="openai/clip-vit-large-patch14-336"):
        build_modality("image", {}, d_model=8)  # the reference default, not downloaded here
    assert time.perf_counter() - start < 2.0
