"""The audio modality: decoding, windows, log-mel features, frozen ImageBind branch, adapter."""

from __future__ import annotations

import inspect
import io
import pickle

import fsspec
import numpy as np
import pytest
import torch
from audio_factory import tone, truncated_copy, write_bytes, write_pyav, write_soundfile
from omegaconf import OmegaConf
from safetensors.torch import save_file

from modalities import (
    CheckpointNotFoundError,
    CorruptMediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
    build_modality,
    get_modality_class,
)
from modalities.audio import AudioConfig, AudioModality
from modalities.audio_features import window_times
from modalities.errors import CheckpointFormatError
from modalities.imagebind_audio import (
    AUDIO_KEY_PREFIXES,
    ENCODER_SIZES,
    ImageBindAudioEncoder,
    build_audio_encoder,
    load_audio_encoder,
    load_audio_state_dict,
)

RATE = 16_000
FEATURE_SHAPE = (3, 1, 128, 204)
# The normalised log-mel value of digital silence, log(float32 eps), and of ImageBind's
# end padding (0 before normalisation).
SILENCE = (np.log(np.finfo(np.float32).eps) + 4.268) / 9.138
PAD = (0.0 + 4.268) / 9.138


@pytest.fixture(scope="module")
def audio() -> AudioModality:
    torch.manual_seed(0)
    return build_modality("audio", AudioConfig.tiny(), d_model=48)


def imagebind_reference():
    """ImageBind's own model module; importable once modalities.imagebind_audio set its alias."""
    from imagebind.models import imagebind_model

    return imagebind_model


def tiny_imagebind():
    """The whole ImageBind model at toy size: its audio branch matches the "tiny" dims."""
    dims = ENCODER_SIZES["tiny"]
    small = dict(embed_dim=16, num_blocks=1, num_heads=2)
    kwargs = {
        f"{m}_{k}": v
        for m in ("vision", "text", "depth", "thermal", "imu")
        for k, v in small.items()
    }
    return (
        imagebind_reference()
        .ImageBindModel(
            **kwargs,
            audio_embed_dim=dims.embed_dim,
            audio_num_blocks=dims.num_blocks,
            audio_num_heads=dims.num_heads,
            out_embed_dim=dims.out_dim,
        )
        .eval()
    )


def peak_hz(wave: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(wave.double()).abs()
    return float(torch.argmax(spectrum)) * sample_rate / wave.numel()


# --- decoding -------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100, 48000])
def test_wav_at_any_rate_and_channel_count_becomes_16k_mono(tmp_path, audio, sample_rate, channels):
    path = write_soundfile(tmp_path / "a.wav", tone(440, 1.5, sample_rate, channels), sample_rate)
    media = audio.load(path)
    assert media.data.dtype == torch.float32 and media.data.dim() == 1
    assert media.sample_rate == RATE and media.source == path
    assert media.duration == pytest.approx(1.5)
    assert abs(media.data.numel() - 1.5 * RATE) <= 1


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100])
def test_resampling_keeps_the_tone_frequency(tmp_path, audio, sample_rate):
    path = write_soundfile(tmp_path / "a.flac", tone(440, 2.0, sample_rate, 2), sample_rate)
    wave = audio.load(path).data
    assert peak_hz(wave, RATE) == pytest.approx(440, abs=1.0)


def test_channels_are_averaged(tmp_path, audio):
    samples = tone(440, 1.0, RATE, 2)
    samples[:, 1] *= -1  # right = -left: the mix cancels
    silent = audio.load(write_soundfile(tmp_path / "s.wav", samples, RATE, "FLOAT")).data
    six = np.tile(np.linspace(-0.5, 0.5, 6, dtype=np.float32), (RATE, 1))  # constant channels
    mixed = audio.load(write_soundfile(tmp_path / "six.wav", six, RATE, "FLOAT")).data
    assert silent.abs().max() < 1e-6
    assert torch.allclose(mixed, torch.zeros_like(mixed), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "codec", "sample_rate", "channels"),
    [
        ("a.m4a", "aac", 44100, 2),  # libsndfile cannot read AAC: decoded by PyAV
        ("a.mp3", "libmp3lame", 22050, 1),
    ],
)
def test_compressed_formats_decode(tmp_path, audio, name, codec, sample_rate, channels):
    path = write_pyav(tmp_path / name, tone(440, 2.0, sample_rate, channels), sample_rate, codec)
    media = audio.load(path)
    assert media.duration == pytest.approx(2.0, abs=0.1)  # encoder priming/padding
    assert peak_hz(media.data, RATE) == pytest.approx(440, abs=1.0)


def test_the_content_decides_not_the_extension(tmp_path, audio):
    wav_bytes = tmp_path / "a.wav"
    write_soundfile(wav_bytes, tone(440, 1.0, 22050), 22050)
    misnamed = write_bytes(tmp_path / "really_a_wav.mp3", wav_bytes.read_bytes())
    assert torch.equal(audio.load(misnamed).data, audio.load(str(wav_bytes)).data)


def test_file_objects_and_fsspec_urls(tmp_path, audio):
    path = write_soundfile(tmp_path / "a.wav", tone(440, 1.0, RATE), RATE)
    with open(path, "rb") as f:
        data = f.read()
    with fsspec.open("memory://audio-test/a.wav", "wb") as f:
        f.write(data)
    from_url = audio.load("memory://audio-test/a.wav")
    from_object = audio.load(io.BytesIO(data))
    assert torch.equal(from_url.data, audio.load(path).data)
    assert torch.equal(from_object.data, from_url.data)


# --- bad media ------------------------------------------------------------------------------
def test_missing_file(tmp_path, audio):
    with pytest.raises(MediaNotFoundError, match="nope.wav"):
        audio.load(str(tmp_path / "nope.wav"))


@pytest.mark.parametrize(
    ("name", "data", "error", "match"),
    [
        ("empty.wav", b"", CorruptMediaError, "empty"),
        ("noise.wav", b"RIFF" + bytes(range(256)) * 4, CorruptMediaError, "not decodable"),
        (
            "notes.txt",
            b"just some text\n" * 50,
            UnsupportedMediaError,
            r"not an audio file \(\.txt\)",
        ),
    ],
)
def test_undecodable_bytes(tmp_path, audio, name, data, error, match):
    path = write_bytes(tmp_path / name, data)
    with pytest.raises(error, match=match) as info:
        audio.load(path)
    assert info.value.path == path


def test_file_without_sound_track(tmp_path, audio):
    from PIL import Image

    path = str(tmp_path / "picture.png")
    Image.new("RGB", (8, 8)).save(path)  # FFmpeg opens it as a one-frame video
    with pytest.raises(UnsupportedMediaError, match="no audio stream"):
        audio.load(path)


@pytest.mark.parametrize("name", ["a.wav", "a.flac"])
def test_truncated_files(tmp_path, audio, name):
    whole = write_soundfile(tmp_path / name, tone(440, 2.0, RATE, 2), RATE)
    cut = truncated_copy(whole, tmp_path / f"cut_{name}", keep=0.6)
    with pytest.raises(CorruptMediaError, match="cut_a"):
        audio.load(cut)


@pytest.mark.parametrize(
    ("extension", "match"),
    [
        (".m4a", "not decodable"),  # the index (moov) is at the end: FFmpeg cannot open it
        (
            ".mka",
            r"truncated: header declares 4\.\d+ s, only [12]\.\d+ s decode",
        ),  # FFmpeg stops at the cut
    ],
)
def test_truncated_ffmpeg_files(tmp_path, audio, extension, match):
    whole = write_pyav(tmp_path / f"a{extension}", tone(440, 4.0, 44100, 2), 44100, "aac")
    with pytest.raises(CorruptMediaError, match=match) as info:
        audio.load(truncated_copy(whole, tmp_path / f"cut{extension}", keep=0.5))
    assert info.value.path.endswith(f"cut{extension}")


def test_zero_samples_and_nan_samples(tmp_path, audio):
    empty = write_soundfile(tmp_path / "zero.wav", np.zeros((0, 1), np.float32), RATE)
    nan = tone(440, 0.5, RATE)
    nan[100] = np.nan
    with pytest.raises(CorruptMediaError, match="0 audio samples"):
        audio.load(empty)
    with pytest.raises(CorruptMediaError, match="NaN"):
        audio.load(write_soundfile(tmp_path / "nan.wav", nan, RATE, "FLOAT"))


@pytest.mark.parametrize(("name", "codec"), [("long.wav", None), ("long.m4a", "aac")])
def test_max_duration_guard(tmp_path, name, codec):
    audio = AudioModality(AudioConfig.tiny(max_duration_seconds=1.0), d_model=8)
    samples = tone(440, 3.0, 16000)
    path = (
        write_soundfile(tmp_path / name, samples, 16000)
        if codec is None
        else write_pyav(tmp_path / name, samples, 16000, codec)
    )
    with pytest.raises(MediaTooLargeError, match=r"3\.\d s of audio exceeds the limit of 1\.0 s"):
        audio.load(path)


# --- windows and features -------------------------------------------------------------------
def test_window_placements():
    imagebind = window_times(10.0, 3, 2.0, "imagebind")
    span = window_times(10.0, 3, 2.0, "span")
    assert torch.allclose(
        imagebind, torch.tensor([[0, 2], [8 / 3, 8 / 3 + 2], [16 / 3, 16 / 3 + 2]])
    )
    assert torch.allclose(span, torch.tensor([[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]))
    assert torch.allclose(window_times(10.0, 1, 2.0, "span"), torch.tensor([[4.0, 6.0]]))
    short = window_times(0.5, 3, 2.0, "imagebind")  # every window holds the whole file
    assert torch.equal(short, torch.tensor([[0.0, 0.5]] * 3))


@pytest.mark.parametrize("duration", [0.5, 2.0, 7.3, 10.0])
def test_imagebind_placement_is_imagebinds_own_sampler(duration):
    from imagebind import data
    from pytorchvideo.data.clip_sampling import ConstantClipsPerVideoSampler

    sampler = ConstantClipsPerVideoSampler(clip_duration=2.0, clips_per_video=3)
    theirs = torch.tensor(
        [[float(s), float(e)] for s, e in data.get_clip_timepoints(sampler, duration)]
    )
    ours = window_times(duration, 3, 2.0, "imagebind")
    assert torch.allclose(ours[:, 0], theirs[:, 0])
    assert torch.allclose(
        ours[:, 1], theirs[:, 1].clamp(max=duration)
    )  # ours end at the file's end


def test_features_equal_imagebinds_own(tmp_path, audio):
    from imagebind import data

    wave = torch.from_numpy(
        np.random.default_rng(0).normal(scale=0.1, size=RATE * 2).astype(np.float32)
    )
    theirs = (
        data.waveform2melspec(wave[None].clone(), RATE, 128, 204) + 4.268
    ) / 9.138  # (1, 128, 204)
    media = audio.load(write_soundfile(tmp_path / "a.wav", wave.numpy(), RATE, "FLOAT"))
    assert torch.allclose(audio.transform(media, train=False)[0], theirs, atol=1e-4)


def test_load_records_window_times(tmp_path, audio):
    media = audio.load(write_soundfile(tmp_path / "a.wav", tone(440, 5.0, RATE), RATE))
    assert media.times.shape == (3, 2) and media.times.dtype == torch.float32
    assert torch.allclose(media.times[:, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert torch.allclose(media.times[:, 1] - media.times[:, 0], torch.full((3,), 2.0))


def test_features_shape_dtype_and_padding(tmp_path, audio):
    x = audio.transform(
        audio.load(write_soundfile(tmp_path / "a.wav", tone(440, 4.0, RATE), RATE)), train=False
    )
    assert x.shape == FEATURE_SHAPE and x.dtype == torch.float32 and torch.isfinite(x).all()
    # A 2 s window gives 198 frames of 10 ms; ImageBind pads the other 6 with 0.
    assert torch.allclose(x[..., 198:], torch.full_like(x[..., 198:], PAD))
    assert (x[..., :198] != PAD).any(dim=-2).all()


def test_windows_hold_the_right_seconds(tmp_path):
    audio = AudioModality(AudioConfig.tiny(window_placement="span"), d_model=8)
    samples = np.concatenate(
        [np.zeros((3 * RATE, 1), np.float32), tone(440, 3.0, RATE)]
    )  # silence, then a tone
    x = audio.transform(
        audio.load(write_soundfile(tmp_path / "a.wav", samples, RATE, "FLOAT")), train=False
    )
    assert torch.allclose(
        x[0, ..., :198], torch.full_like(x[0, ..., :198], SILENCE), atol=1e-4
    )  # [0, 2] s
    assert (x[2, ..., :198] > SILENCE + 1).any()  # [4, 6] s: the tone


def test_silent_audio_is_finite(tmp_path, audio):
    x = audio.transform(
        audio.load(write_soundfile(tmp_path / "s.wav", np.zeros((RATE * 3, 2)), RATE)), False
    )
    assert torch.isfinite(x).all()
    assert torch.allclose(x[..., :198], torch.full_like(x[..., :198], SILENCE), atol=1e-4)


@pytest.mark.parametrize("num_samples", [1, 399, 8000])
def test_files_shorter_than_a_window_are_padded(tmp_path, audio, num_samples):
    samples = tone(440, num_samples / RATE, RATE)
    media = audio.load(write_soundfile(tmp_path / "short.wav", samples, RATE))
    x = audio.transform(media, train=False)
    frames = max(1, 1 + (num_samples - 400) // 160)  # 25 ms frames every 10 ms, at least one
    assert x.shape == FEATURE_SHAPE and torch.isfinite(x).all()
    assert torch.allclose(x[..., frames:], torch.full_like(x[..., frames:], PAD))
    assert torch.equal(x[0], x[2])  # every window holds the whole file
    assert torch.allclose(media.times, torch.tensor([[0.0, num_samples / RATE]] * 3))


def test_transform_is_deterministic_and_the_same_for_training(tmp_path, audio):
    media = audio.load(
        write_soundfile(
            tmp_path / "a.wav", np.random.default_rng(0).normal(size=(RATE * 7, 1)), RATE
        )
    )
    assert torch.equal(audio.transform(media, train=False), audio.transform(media, train=False))
    assert torch.equal(audio.transform(media, train=True), audio.transform(media, train=False))


# --- encoder --------------------------------------------------------------------------------
def test_modality_contract(audio):
    assert get_modality_class("audio") is AudioModality
    assert (audio.record_key, audio.placeholder, audio.aliases) == (
        "sound",
        "<sound>",
        ("<audio>",),
    )
    assert audio.special_tokens() == ("<so_start>", "<so_patch>", "<so_end>")
    assert audio.num_tokens == 8


def test_encode_and_adapt_shapes(tmp_path, audio):
    x = audio.transform(
        audio.load(write_soundfile(tmp_path / "a.wav", tone(440, 3.0, RATE), RATE)), False
    )
    features = audio.encode(torch.stack([x, x]))
    assert features.shape == (2, 3, ENCODER_SIZES["tiny"].out_dim) and features.grad_fn is None
    assert torch.allclose(
        features.norm(dim=-1), torch.full((2, 3), 20.0)
    )  # ImageBind: unit norm x 20
    assert audio.adapt(features).shape == (2, 8, 48)
    assert audio.adapter.position_embedding.shape == (8, ENCODER_SIZES["tiny"].out_dim)


def test_encoder_is_frozen_through_a_training_step():
    torch.manual_seed(0)
    audio = AudioModality(AudioConfig.tiny(), d_model=16).train()
    encoder_before = {k: v.clone() for k, v in audio.encoder.state_dict().items()}
    adapter_before = {k: v.clone() for k, v in audio.adapter.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in audio.parameters() if p.requires_grad], lr=0.1)
    audio(torch.randn(2, *FEATURE_SHAPE)).pow(2).mean().backward()
    optimizer.step()
    assert not any(p.requires_grad for p in audio.encoder.parameters())
    assert not audio.encoder.training and audio.adapter.training
    assert all(torch.equal(v, encoder_before[k]) for k, v in audio.encoder.state_dict().items())
    assert any(not torch.equal(v, adapter_before[k]) for k, v in audio.adapter.state_dict().items())


def test_huge_dims_match_the_installed_imagebind_huge(monkeypatch):
    """imagebind_huge() only overrides some ImageBindModel defaults: read both, build nothing."""
    imagebind_model = imagebind_reference()
    passed = {}

    def capture(self, **kwargs):
        passed.update(kwargs)
        raise RuntimeError("captured")

    monkeypatch.setattr(imagebind_model.ImageBindModel, "__init__", capture)
    with pytest.raises(RuntimeError, match="captured"):
        imagebind_model.imagebind_huge(pretrained=False)
    monkeypatch.undo()
    defaults = {
        k: p.default
        for k, p in inspect.signature(imagebind_model.ImageBindModel).parameters.items()
    }
    actual = {**defaults, **passed}
    huge = ENCODER_SIZES["huge"]
    assert (actual["audio_embed_dim"], actual["audio_num_blocks"], actual["audio_num_heads"]) == (
        huge.embed_dim,
        huge.num_blocks,
        huge.num_heads,
    )
    assert (actual["out_embed_dim"], actual["audio_kernel_size"], actual["audio_stride"]) == (
        huge.out_dim,
        huge.patch_size,
        huge.patch_stride,
    )
    assert (actual["audio_num_mel_bins"], actual["audio_target_len"]) == FEATURE_SHAPE[2:]


def test_reference_size_checkpoint_loads_through_the_config(tmp_path):
    """An ImageBind-huge-shaped file (audio branch + a vision key): the recipe path end to end."""
    torch.manual_seed(2)
    state = ImageBindAudioEncoder(ENCODER_SIZES["huge"]).state_dict()
    state["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 2)  # ignored
    path = str(tmp_path / "imagebind_huge.pth")
    torch.save(state, path)
    audio = AudioModality(AudioConfig(encoder=path), d_model=4096)
    assert sum(p.numel() for p in audio.encoder.parameters()) == pytest.approx(86.2e6, rel=0.01)
    assert all(torch.equal(v, state[k]) for k, v in audio.encoder.state_dict().items())
    assert audio.adapter.position_embedding.shape == (8, 1024)
    assert audio.adapter.projection.weight.shape == (4096, 768)
    assert len(audio.adapter.qformer.encoder.layer) == 2


# --- checkpoints ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imagebind_checkpoint(tmp_path_factory):
    """A tiny ImageBind checkpoint in the real file's flat key layout (all modalities)."""
    torch.manual_seed(1)
    model = tiny_imagebind()
    path = str(tmp_path_factory.mktemp("ckpt") / "imagebind_tiny.pth")
    torch.save(model.state_dict(), path)
    return model, path


def test_checkpoint_keeps_only_audio_keys_and_matches_imagebind(imagebind_checkpoint):
    model, path = imagebind_checkpoint
    state = load_audio_state_dict(path, "k")
    assert any(k.startswith("modality_trunks.vision.") for k in model.state_dict())
    assert state and all(k.startswith(AUDIO_KEY_PREFIXES) for k in state)
    encoder = load_audio_encoder(path, "k", ENCODER_SIZES["tiny"]).eval()
    x = torch.randn(2, *FEATURE_SHAPE)
    with torch.no_grad():
        reference = model({"audio": x.flatten(0, 1)})["audio"].view(2, 3, -1)
        assert torch.allclose(encoder(x), reference, atol=1e-6)


def test_safetensors_and_prefixed_checkpoints(tmp_path, imagebind_checkpoint):
    model, _ = imagebind_checkpoint
    prefixed = {f"model.audio_encoder.{k}": v.contiguous() for k, v in model.state_dict().items()}
    path = str(tmp_path / "grounding.safetensors")
    save_file(prefixed, path)
    encoder = load_audio_encoder(
        path, "k", ENCODER_SIZES["tiny"], key_prefix="model.audio_encoder."
    )
    expected = {k: v for k, v in model.state_dict().items() if k.startswith(AUDIO_KEY_PREFIXES)}
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in expected.items())


def test_missing_checkpoint_fails_before_building(monkeypatch, tmp_path):
    def never(*args, **kwargs):
        raise AssertionError("the encoder was built before the checkpoint was checked")

    monkeypatch.setattr(ImageBindAudioEncoder, "__init__", never)
    missing = str(tmp_path / "imagebind_huge.pth")
    with pytest.raises(CheckpointNotFoundError) as info:
        AudioModality(AudioConfig(encoder=missing), d_model=8)
    assert missing in str(info.value) and "model.modalities.audio.encoder" in str(info.value)


@pytest.mark.parametrize("case", ["wrong size", "vision only", "pickled code", "not a checkpoint"])
def test_unusable_checkpoints(tmp_path, imagebind_checkpoint, case):
    model, path = imagebind_checkpoint  # "wrong size": tiny weights for the huge encoder
    if case == "vision only":
        path = str(tmp_path / "vision.pth")
        torch.save({k: v for k, v in model.state_dict().items() if ".vision." in k}, path)
    elif case == "pickled code":
        path = str(tmp_path / "code.pth")
        with open(path, "wb") as f:
            pickle.dump({"x": inspect.signature}, f, protocol=2)  # weights_only refuses functions
    elif case == "not a checkpoint":
        path = write_bytes(tmp_path / "junk.safetensors", b"\x00" * 64)
    with pytest.raises(CheckpointFormatError, match="model.modalities.audio.encoder") as info:
        build_audio_encoder(path, "model.modalities.audio.encoder")
    assert path in str(info.value)


# --- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_windows": 0}, "num_windows"),
        ({"window_seconds": 0.0}, "window_seconds"),
        ({"window_placement": "random"}, "window_placement"),
        ({"encoder": ""}, "encoder"),
        ({"num_windows": 9}, "max_windows"),
        ({"fbank_std": 0.0}, "fbank_std"),
        ({"num_mel_bins": 8}, "num_mel_bins"),
        ({"max_duration_seconds": -1.0}, "max_duration_seconds"),
        ({"qformer_heads": 5}, "qformer_hidden_size"),
        ({"qformer_dropout": 1.0}, "qformer_dropout"),
        ({"qformer_init_std": 0.0}, "qformer_init_std"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"AudioConfig.{field} "):
        AudioConfig(**overrides)


def test_config_is_a_recipe_schema():
    merged = OmegaConf.merge(
        OmegaConf.structured(AudioConfig), {"encoder": "/w/imagebind_huge.pth"}
    )
    config = AudioConfig(**OmegaConf.to_container(merged))
    assert config.encoder == "/w/imagebind_huge.pth" and config.num_windows == 3


@pytest.mark.slow
def test_reference_size_forward(tmp_path, audio):
    encoder = ImageBindAudioEncoder(ENCODER_SIZES["huge"]).eval()
    x = audio.transform(
        audio.load(write_soundfile(tmp_path / "a.wav", tone(440, 6.0, 44100), 44100)), False
    )
    with torch.no_grad():
        features = encoder(x[None])
    assert features.shape == (1, 3, 1024) and torch.isfinite(features).all()
