"""``preprocess: groundinggpt`` gives the released GroundingGPT-7B's inputs; ``default`` does not.

Each test makes its file, runs both settings, and checks the ``groundinggpt`` tensors
against values computed here from the reference's own description (its index formula,
its colour, decord's own resize, ImageBind's window arithmetic), not from our functions.
"""

import dataclasses
from fractions import Fraction

import decord
import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from media_factory import make_exif_rotated_jpeg, make_video, ramp_value
from PIL import Image
from torchaudio.compliance import kaldi
from torchvision.transforms import RandomResizedCrop
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from modalities import build_modality
from modalities.audio import AudioConfig
from modalities.clip import CLIP_MEAN, CLIP_STD
from modalities.image import ImageConfig, pad_to_square
from modalities.image import groundinggpt_pad_colour
from modalities.video_io import groundinggpt_frame_indices, read_video, sample_indices

SIZE = 32  # image / frame side of the tiny encoders
F_VIDEO = 8
VIDEO = {
    "num_frames": F_VIDEO, "image_size": SIZE, "frame_encoder": "tiny", "frame_qformer": "tiny", "num_queries": 4,
    "adapter_hidden_size": 32, "adapter_num_heads": 2, "adapter_intermediate_size": 64, "adapter_dropout": 0.0,
}
MEAN = torch.tensor(CLIP_MEAN).view(3, 1, 1)
STD = torch.tensor(CLIP_STD).view(3, 1, 1)


def both(name: str, config: dict):
    """(default modality, groundinggpt modality) of the same config."""
    return (build_modality(name, {**config, "preprocess": p}, d_model=16) for p in ("default", "groundinggpt"))


def clip_normalise(uint8: torch.Tensor) -> torch.Tensor:
    return (uint8.float() / 255 - MEAN) / STD


# --- image ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images():
    return tuple(both("image", {"encoder": "tiny", "image_size": SIZE}))


def odd_png(tmp_path, size=(7, 4)):
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "odd.png")
    return tmp_path / "odd.png", pixels


def test_groundinggpt_pads_with_the_truncated_mean_colour(images, tmp_path):
    path, pixels = odd_png(tmp_path)  # 7 wide, 4 high: 3 rows of padding, 1 above, 2 below
    _, groundinggpt = images
    media = groundinggpt.load(path)
    assert groundinggpt_pad_colour() == (122, 116, 104)  # int(x * 255) of 0.4815, 0.4578, 0.4082
    square = pad_to_square(media.data, groundinggpt_pad_colour())
    colour = torch.tensor([122, 116, 104], dtype=torch.uint8).view(3, 1)
    for row in (0, 5, 6):  # the odd row of padding is below the image, as PIL's paste at (w - h) // 2
        assert torch.equal(square[:, row, :], colour.expand(3, 7))
    assert torch.equal(square[:, 1:5, :], torch.from_numpy(pixels).permute(2, 0, 1))
    assert torch.equal(pad_to_square(media.data)[:, 0, 0], torch.tensor([123, 117, 104], dtype=torch.uint8))


def test_groundinggpt_image_equals_expand2square_then_clip_processor(images, tmp_path):
    path, pixels = odd_png(tmp_path)
    default, groundinggpt = images
    square = Image.new("RGB", (7, 7), (122, 116, 104))  # the reference: expand2square ...
    square.paste(Image.fromarray(pixels), (0, (7 - 4) // 2))
    processor = CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    expected = processor(square, return_tensors="pt")["pixel_values"][0]  # ... then CLIPImageProcessor
    ours = groundinggpt.transform(groundinggpt.load(path), train=False)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    other = default.transform(default.load(path), train=False)
    assert not torch.allclose(other, expected, atol=1e-3)  # another fill, another resize


def test_groundinggpt_reads_stored_pixels_without_exif_rotation(images, tmp_path):
    path = make_exif_rotated_jpeg(tmp_path / "rotated.jpg", size=(40, 20), orientation=6)
    default, groundinggpt = images
    assert default.load(path).size == (20, 40)  # shown upright
    assert groundinggpt.load(path).size == (40, 20)  # as stored: Image.open(f).convert("RGB")


def test_groundinggpt_drops_alpha_instead_of_compositing(images, tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)  # fully transparent red
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "clear.png")
    default, groundinggpt = images
    assert groundinggpt.load(tmp_path / "clear.png").data[:, 0, 0].tolist() == [200, 10, 10]
    assert default.load(tmp_path / "clear.png").data[:, 0, 0].tolist() == [123, 117, 104]


# --- video ----------------------------------------------------------------------------------
def reference_indices(num_frames: int, wanted: int) -> list[int]:
    """load_video(..., sampling="uniform"): n = min(wanted, vlen); arange(0, vlen, vlen / n)."""
    n = min(wanted, num_frames)
    return np.arange(0, num_frames, num_frames / n).astype(int)[:wanted].tolist()


@pytest.mark.parametrize("wanted", [1, 7, 8, 18, 64])
def test_frame_indices_follow_the_reference_formula(wanted):
    for num_frames in range(1, 400):
        assert groundinggpt_frame_indices(num_frames, wanted).tolist() == reference_indices(num_frames, wanted)


def test_frame_indices_are_segment_starts_not_centres():
    assert groundinggpt_frame_indices(20, 8).tolist() == [0, 2, 5, 7, 10, 12, 15, 17]
    assert sample_indices(20, 8).tolist() == [1, 3, 6, 8, 11, 13, 16, 18]


@pytest.fixture(scope="module")
def videos():
    return tuple(both("video", VIDEO))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    # 64 x 48: squashing and padding to a square differ; 20 frames: starts and centres differ
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", num_frames=20, size=(64, 48), fps=10)


def test_groundinggpt_frames_are_squashed_by_the_decoder_at_segment_starts(videos, clip_path):
    default, groundinggpt = videos
    indices = reference_indices(20, F_VIDEO)
    # The reference: VideoReader(uri, height=224, width=224).get_batch(indices), here at SIZE.
    frames = decord.VideoReader(str(clip_path), width=SIZE, height=SIZE).get_batch(indices).asnumpy()
    expected = clip_normalise(torch.from_numpy(frames).permute(0, 3, 1, 2))
    media = groundinggpt.load(clip_path)
    assert media.data.shape == (F_VIDEO, 3, SIZE, SIZE)
    grey = media.data[:, 0, -2, -2].int()  # outside the white bar: the frame's ramp level
    # mpeg4 is lossy; next frames are 12 levels apart, so 5 still tells starts from centres
    assert (grey - torch.tensor([ramp_value(i, 20) for i in indices])).abs().max() <= 5
    assert torch.equal(media.data, torch.from_numpy(frames).permute(0, 3, 1, 2))  # the very pixels
    torch.testing.assert_close(groundinggpt.transform(media, train=False), expected, atol=1e-5, rtol=0)
    # Squashed: the white bar (top-left quarter) starts at row 0; padded, row 0 is the fill.
    top_left = groundinggpt.transform(media, train=False)[:, :, 0, 0]
    assert torch.allclose(top_left, ((1 - MEAN) / STD).view(1, 3), atol=0.1)
    padded = default.transform(default.load(clip_path), train=False)[:, :, 0, 0]
    assert padded.abs().max() < 0.02  # CLIP's mean colour normalises to ~0


def test_pyav_fallback_squashes_like_decord(clip_path, monkeypatch):
    indices = groundinggpt_frame_indices
    by_decord = read_video(clip_path, F_VIDEO, 10**8, indices, (SIZE, SIZE))

    def refuse(*args, **kwargs):
        raise decord.DECORDError("test: decord refuses")

    monkeypatch.setattr(decord, "VideoReader", refuse)
    by_pyav = read_video(clip_path, F_VIDEO, 10**8, indices, (SIZE, SIZE))
    assert torch.equal(by_pyav.data, by_decord.data)


def test_short_clips_give_every_frame_once_not_repeats(videos, tmp_path):
    path = make_video(tmp_path / "short.mp4", num_frames=5)
    default, groundinggpt = videos
    assert groundinggpt.load(path).data.shape[0] == 5  # load_video: n_frms = min(n_frms, vlen)
    assert default.load(path).data.shape[0] == F_VIDEO
    frames = groundinggpt.transform(groundinggpt.load(path), train=False)
    assert frames.shape == (5, 3, SIZE, SIZE)
    # The video Q-Former reads 5 frames with the first 5 frame positions, as the reference's.
    assert groundinggpt(frames.unsqueeze(0)).shape == (1, VIDEO["num_queries"], 16)


def test_groundinggpt_training_crop_is_resized_back_and_truncated(videos, clip_path):
    _, groundinggpt = videos
    media = groundinggpt.load(clip_path)  # (F, 3, 32, 32), squashed by the decoder
    torch.manual_seed(0)
    crop = groundinggpt.transform(media, train=True)
    # The reference's RandomResizedCropVideo: one box for all frames, resized back with
    # interpolate(bicubic, align_corners=False), then ToUint8 (truncation).
    torch.manual_seed(0)
    top, left, height, width = RandomResizedCrop.get_params(media.data[0], [0.8, 1.0], [3 / 4, 4 / 3])
    box = media.data[..., top:top + height, left:left + width].float()
    assert (height, width) != (SIZE, SIZE)  # a real crop
    resized = F.interpolate(box, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    expected = clip_normalise(resized.clamp(0, 255).to(torch.uint8))
    torch.testing.assert_close(crop, expected, atol=1e-5, rtol=0)
    uncropped = dataclasses.replace(groundinggpt.config, train_crop_scale=(1.0, 1.0), train_crop_ratio=(1.0, 1.0))
    no_crop = build_modality("video", uncropped, d_model=16)
    assert torch.equal(no_crop.transform(media, train=True), groundinggpt.transform(media, train=False))


# --- audio ----------------------------------------------------------------------------------
RATE = 16_000


@pytest.fixture(scope="module")
def audios():
    settings = ("default", "groundinggpt")
    return tuple(build_modality("audio", AudioConfig.tiny(preprocess=p), d_model=16) for p in settings)


def stereo_wav(path, seconds: float) -> tuple[str, np.ndarray]:
    """Left: 440 Hz; right: 1500 Hz, louder, so any mix differs from channel 0."""
    t = np.arange(round(seconds * RATE)) / RATE
    samples = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.6 * np.sin(2 * np.pi * 1500 * t)], axis=1)
    soundfile.write(str(path), samples.astype(np.float32), RATE, subtype="FLOAT")
    return str(path), samples.astype(np.float32)


def imagebind_features(clip: np.ndarray) -> torch.Tensor:
    """ImageBind's waveform2melspec + Normalize(-4.268, 9.138), for one (n,) clip."""
    wave = torch.from_numpy(clip).unsqueeze(0)
    wave = wave - wave.mean()
    fbank = kaldi.fbank(wave, htk_compat=True, sample_frequency=RATE, use_energy=False, window_type="hanning",
                        num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10).T
    fbank = F.pad(fbank, (0, 204 - fbank.shape[1])) if fbank.shape[1] < 204 else fbank[:, :204]
    return (fbank.unsqueeze(0) + 4.268) / 9.138


def test_groundinggpt_takes_channel_0_and_imagebinds_window_samples(audios, tmp_path):
    path, samples = stereo_wav(tmp_path / "stereo.wav", 5.5)
    default, groundinggpt = audios
    media = groundinggpt.load(path)
    assert torch.equal(media.data, torch.from_numpy(samples[:, 0]))  # channel 0, not a mix
    assert torch.allclose(default.load(path).data, torch.from_numpy(samples.mean(axis=1)))
    # ConstantClipsPerVideoSampler(2, 3) on 5.5 s: starts 0, 3.5/3, 7/3 s; int(t * 16000).
    room = Fraction(5.5 - 2)
    starts = [int(room / 3 * i * RATE) for i in range(3)]
    assert starts == [0, 18666, 37333]
    assert media.meta["window_samples"][:, 0].tolist() == starts
    assert [round(float(t) * RATE) for t in default.load(path).times[:, 0]] == [0, 18667, 37333]  # rounded
    expected = torch.stack([imagebind_features(samples[s:s + 2 * RATE, 0]) for s in starts])
    torch.testing.assert_close(groundinggpt.transform(media, train=False), expected, atol=1e-4, rtol=0)
    assert (default.transform(default.load(path), train=False) - expected).abs().max() > 0.1


def test_groundinggpt_audio_refuses_another_window_placement():
    with pytest.raises(ValueError, match="window_placement"):
        AudioConfig.tiny(preprocess="groundinggpt", window_placement="span")


@pytest.mark.parametrize("config", [ImageConfig, AudioConfig])
def test_unknown_preprocess_names_the_key_and_the_choices(config):
    with pytest.raises(ValueError, match=r"preprocess` must be one of \['default', 'groundinggpt'\], got 'llava'"):
        config(preprocess="llava")
