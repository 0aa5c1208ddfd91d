"""Video modality: frame sampling and times, decord/PyAV, bad files, transforms, frozen parts."""

import logging
import time

import decord
import fsspec
import numpy as np
import pytest
import soundfile
import torch
from media_factory import make_video, ramp_value, truncate

from modalities import (
    CheckpointNotFoundError,
    CorruptMediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
    build_modality,
)
from modalities.base import Media
from modalities.video import VideoConfig, temporal_residual
from modalities.video_io import read_video, sample_indices

F = 8  # frames per clip in these tests
TINY = {
    "num_frames": F, "image_size": 32, "frame_encoder": "tiny", "frame_qformer": "tiny", "num_queries": 6,
    "adapter_hidden_size": 32, "adapter_num_heads": 2, "adapter_intermediate_size": 64, "adapter_dropout": 0.0,
}


def tiny_video(**overrides):
    return build_modality("video", {**TINY, **overrides}, d_model=24)


@pytest.fixture(scope="module")
def modality():
    return tiny_video()


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", num_frames=20, size=(64, 48), fps=10)


def grey_levels(media: Media) -> list[int]:
    return media.data[:, 0, -5, -5].tolist()  # bottom-right pixel: outside the white bar


# --- sampling ----------------------------------------------------------------------------------
def test_sample_indices_are_segment_centres():
    assert sample_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert sample_indices(8, 8).tolist() == list(range(8))


def test_short_clips_repeat_the_nearest_frames():
    indices = sample_indices(3, 8)
    assert len(indices) == 8 and sorted(indices.tolist()) == indices.tolist()
    assert set(indices.tolist()) == {0, 1, 2}
    assert sample_indices(1, 5).tolist() == [0] * 5


def test_sample_indices_refuses_empty_clips():
    with pytest.raises(ValueError):
        sample_indices(0, 4)


# --- decoding ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "codec, size, fps, num_frames",
    [("mpeg4", (64, 48), 10, 20), ("h264", (50, 90), 25, 30), ("libx264", (96, 32), 8, 9), ("hevc", (64, 64), 30, 16)],
)
def test_codecs_sizes_and_rates(tmp_path, codec, size, fps, num_frames):
    path = make_video(tmp_path / f"{codec}.mp4", num_frames=num_frames, size=size, fps=fps, codec=codec)
    media = read_video(str(path), F, max_frame_pixels=10**8)
    indices = sample_indices(num_frames, F)
    assert media.data.shape == (F, 3, size[1], size[0]) and media.data.dtype == torch.uint8
    assert media.size == size
    assert media.duration == pytest.approx(num_frames / fps)
    torch.testing.assert_close(media.times, torch.tensor(indices / fps, dtype=torch.float32), atol=2e-3, rtol=0)
    expected = [ramp_value(int(i), num_frames) for i in indices]
    assert np.abs(np.array(grey_levels(media)) - expected).max() <= 4  # lossy codecs


def test_pyav_fallback_matches_decord_and_logs_the_file(clip_path, monkeypatch, caplog):
    by_decord = read_video(str(clip_path), F, 10**8)

    def refuse(*args, **kwargs):
        raise decord.DECORDError("cannot open")

    monkeypatch.setattr(decord, "VideoReader", refuse)
    with caplog.at_level(logging.WARNING, logger="modalities.video_io"):
        by_pyav = read_video(str(clip_path), F, 10**8)
    assert "clip.mp4" in caplog.text and "PyAV" in caplog.text
    assert torch.equal(by_decord.data, by_pyav.data)
    torch.testing.assert_close(by_decord.times, by_pyav.times, atol=1e-3, rtol=0)
    assert by_decord.duration == pytest.approx(by_pyav.duration)


def test_buffers_and_fsspec_urls_decode(clip_path):
    with fsspec.open("memory://videos/clip.mp4", "wb") as f:
        f.write(clip_path.read_bytes())
    from_url = read_video("memory://videos/clip.mp4", F, 10**8)
    with open(clip_path, "rb") as f:
        from_object = read_video(f, F, 10**8)
    local = read_video(str(clip_path), F, 10**8)
    assert torch.equal(from_url.data, local.data) and torch.equal(from_object.data, local.data)


def test_short_clip_keeps_the_shape_with_true_times(tmp_path):
    media = read_video(str(make_video(tmp_path / "short.mp4", num_frames=3, fps=10)), F, 10**8)
    assert media.data.shape[0] == F
    assert sorted(set(media.times.tolist())) == pytest.approx([0.0, 0.1, 0.2])
    assert media.duration == pytest.approx(0.3)


def test_one_frame_video_is_repeated(tmp_path):
    media = read_video(str(make_video(tmp_path / "one.mp4", num_frames=1)), F, 10**8)
    assert media.data.shape[0] == F and torch.equal(media.data[0], media.data[-1])
    assert media.times.tolist() == [0.0] * F


def test_zero_frame_video_is_corrupt(tmp_path):
    path = make_video(tmp_path / "empty_stream.avi", num_frames=0)
    with pytest.raises(CorruptMediaError, match="empty_stream.avi.*0 frames"):
        read_video(str(path), F, 10**8)


def test_bad_files_raise_typed_errors_naming_the_file(tmp_path, clip_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"\x00\x01not a video" * 100)
    (tmp_path / "cut.mp4").write_bytes(clip_path.read_bytes())
    truncate(tmp_path / "cut.mp4", keep=0.4)
    soundfile.write(tmp_path / "sound.wav", np.zeros(1600, np.float32), 16000)
    expected = {
        "empty.mp4": CorruptMediaError,
        "garbage.mp4": CorruptMediaError,
        "cut.mp4": CorruptMediaError,
        "sound.wav": UnsupportedMediaError,  # a real media file, but no video stream
        "absent.mp4": MediaNotFoundError,
    }
    for name, error in expected.items():
        start = time.perf_counter()
        with pytest.raises(error) as caught:
            read_video(str(tmp_path / name), F, 10**8)
        assert name in str(caught.value)
        assert time.perf_counter() - start < 5.0


def test_too_large_frames_are_refused(clip_path):
    with pytest.raises(MediaTooLargeError, match="clip.mp4"):
        read_video(str(clip_path), F, max_frame_pixels=64 * 48 - 1)


# --- transforms --------------------------------------------------------------------------------
def test_eval_transform_is_deterministic_and_never_crops(modality, clip_path):
    media = modality.load(str(clip_path))
    x = modality.transform(media, train=False)
    assert x.shape == (F, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, modality.transform(media, train=False))
    assert x[:, :, 0, 0].abs().max() < 0.01  # 64x48 frames padded with the mean colour (0 after norm)


def test_train_crop_is_random_and_shared_by_all_frames(modality):
    frame = torch.randint(0, 255, (3, 48, 64), dtype=torch.uint8)
    media = Media(data=frame.expand(F, -1, -1, -1).clone(), source="same_frames")
    torch.manual_seed(0)
    first = modality.transform(media, train=True)
    assert all(torch.equal(first[0], first[i]) for i in range(F))  # one crop for all frames
    assert not torch.equal(first, modality.transform(media, train=True))
    assert not torch.equal(first, modality.transform(media, train=False))
    torch.manual_seed(0)
    assert torch.equal(first, modality.transform(media, train=True))


def test_train_crop_can_be_switched_off(clip_path):
    modality = tiny_video(train_crop_scale=[1.0, 1.0])
    media = modality.load(str(clip_path))
    assert torch.equal(modality.transform(media, train=True), modality.transform(media, train=False))


# --- model -------------------------------------------------------------------------------------
def test_shapes_through_encoder_and_adapter(modality):
    assert modality.num_tokens == 6
    frames = torch.randn(2, F, 3, 32, 32)
    features = modality.encode(frames)
    assert features.shape == (2, F, 32, 32)  # (B, F, frame queries, frame Q-Former width)
    assert not features.requires_grad
    assert modality.adapt(features).shape == (2, 6, 24)
    assert modality.special_tokens() == ("<vi_start>", "<vi_patch>", "<vi_end>")


def test_frame_batches_do_not_change_features():
    modality = tiny_video(frame_batch_size=3)
    frames = torch.randn(2, F, 3, 32, 32)
    chunked = modality.encode(frames)
    modality.encoder.frame_batch_size = 64
    torch.testing.assert_close(chunked, modality.encode(frames), atol=1e-5, rtol=1e-4)


def test_only_the_adapter_trains():
    modality = tiny_video()
    modality.train()
    assert not modality.encoder.training and modality.adapter.training
    encoder_before = {k: v.clone() for k, v in modality.encoder.state_dict().items()}
    position_before = modality.adapter.position_embedding.detach().clone()
    opt = torch.optim.AdamW([p for p in modality.parameters() if p.requires_grad], lr=1e-2)
    modality(torch.randn(1, F, 3, 32, 32)).pow(2).mean().backward()
    opt.step()
    assert all(p.grad is None and not p.requires_grad for p in modality.encoder.parameters())
    assert all(torch.equal(v, modality.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert not torch.equal(position_before, modality.adapter.position_embedding)
    assert modality.adapter.position_embedding.shape == (F, 32)  # one learned position per frame


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"num_frames": 0}, "num_frames"),
        ({"train_crop_scale": (0.0, 1.0)}, "train_crop_scale"),
        ({"train_crop_scale": (0.5,)}, "train_crop_scale"),
        ({"train_crop_ratio": (2.0, 1.0)}, "train_crop_ratio"),
        ({"adapter_hidden_size": 30, "adapter_num_heads": 4}, "adapter_num_heads"),
        ({"frame_feature_layer": 0}, "frame_feature_layer"),
        ({"max_frame_pixels": 0}, "max_frame_pixels"),
        ({"frame_qformer": ""}, "frame_qformer"),
        ({"adapter_window_frames": 3}, "adapter_window_frames"),  # 8 frames
        ({"adapter_window_frames": 2, "num_queries": 6}, "adapter_window_frames"),  # 4 windows
        ({"adapter_init_std": 0.0}, "adapter_init_std"),
        ({"temporal_residual": True, "num_frames": 1, "num_queries": 1}, "temporal_residual"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        VideoConfig(**{**TINY, **overrides})


def test_temporal_residual_keeps_what_changes_over_time_and_drops_the_rest():
    torch.manual_seed(0)
    features = torch.randn(2, F, 4, 8)
    residual = temporal_residual(features)
    assert torch.allclose(residual.mean(dim=1), torch.zeros(2, 4, 8), atol=1e-6)
    assert torch.allclose(residual.flatten(1).std(dim=1), torch.ones(2))
    static = torch.randn(2, 1, 4, 8)  # the same in every frame: background, still shapes
    torch.testing.assert_close(temporal_residual(3.0 * features + static), residual)
    assert temporal_residual(static.expand(2, F, 4, 8)).abs().max() == 0  # nothing moves: all zeros


def test_temporal_residual_adapter_ignores_a_static_offset():
    torch.manual_seed(0)
    modality = tiny_video(temporal_residual=True).eval()
    features = torch.randn(2, F, modality.encoder.num_queries, modality.encoder.hidden_size)
    offset = torch.randn(2, 1, modality.encoder.num_queries, modality.encoder.hidden_size)
    torch.testing.assert_close(modality.adapt(features + offset), modality.adapt(features))
    plain = tiny_video().eval()
    assert not torch.allclose(plain.adapt(features + offset), plain.adapt(features))


def test_windowed_adapter_gives_num_queries_tokens_in_time_order():
    torch.manual_seed(0)
    modality = tiny_video(adapter_window_frames=2, num_queries=8).eval()  # 4 windows x 2 queries
    features = torch.randn(1, F, modality.encoder.num_queries, modality.encoder.hidden_size)
    tokens = modality.adapt(features)
    assert tokens.shape == (1, 8, 24) and modality.num_tokens == 8
    late = features.clone()
    late[:, -2:] += 1.0  # the last window's frames
    assert torch.equal(modality.adapt(late)[:, :6], tokens[:, :6])


def test_default_frame_qformer_missing_names_path_and_recipe_key():
    with pytest.raises(CheckpointNotFoundError) as caught:
        tiny_video(frame_qformer="blip2_pretrained_vitL.pth")
    message = str(caught.value)
    assert "blip2_pretrained_vitL.pth" in message and "model.modalities.video.frame_qformer" in message


def test_recipe_key_prefix_is_configurable():
    with pytest.raises(CheckpointNotFoundError, match="stage2.modalities.video.frame_encoder"):
        tiny_video(frame_encoder="./nowhere/clip", recipe_key="stage2.modalities.video")
