"""Audio windows and the log-mel filterbank features ImageBind's audio branch reads.

Facts carried over from ImageBind (``imagebind/data.py``), which GroundingGPT feeds as is:
16 kHz mono; each window's mean is removed; a Kaldi-compatible filterbank with 128 mel bins,
a 25 ms Hann window every 10 ms, no dither and no energy term; the (128, frames) result is
cropped or padded with 0 to 204 frames and normalised with mean -4.268 and std 9.138.
A 2 s window gives 198 frames, so even full windows end in 6 columns of padding.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torchaudio.compliance import kaldi

SAMPLE_RATE = 16_000  # Hz, what ImageBind's audio branch was trained on
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
FRAME_LENGTH_SAMPLES = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)  # 400: shortest input to fbank
WINDOW_PLACEMENTS = ("imagebind", "span")


def window_times(
    duration_s: float, num_windows: int, window_s: float, placement: str = "imagebind"
) -> torch.Tensor:
    """Start and end, in seconds, of ``num_windows`` windows of ``window_s`` over a file.

    Placements (the free room is ``max(duration_s - window_s, 0)``):

    * ``"imagebind"``: window i starts at ``i * room / W``, as ImageBind's (pytorchvideo's
      ``ConstantClipsPerVideoSampler``) and so GroundingGPT's data. The last
      ``room / W`` seconds of the file are in no window.
    * ``"span"``: window i starts at ``i * room / (W - 1)``: the first window starts the
      file, the last one ends it (W = 1: one centred window).

    A file shorter than a window gets W windows that all start at 0. Ends are clipped to
    the file, so each row says which seconds of sound the window actually holds.

    Returns:
        (W, 2) float32 tensor of [start, end] in seconds.
    """
    if placement not in WINDOW_PLACEMENTS:
        raise ValueError(f"window placement must be one of {WINDOW_PLACEMENTS}, got {placement!r}")
    room = max(duration_s - window_s, 0.0)
    index = torch.arange(num_windows, dtype=torch.float64)
    if placement == "imagebind":
        starts = index * room / num_windows
    elif num_windows == 1:
        starts = torch.full((1,), room / 2, dtype=torch.float64)
    else:
        starts = index * room / (num_windows - 1)
    ends = torch.clamp(starts + window_s, max=duration_s)
    return torch.stack([starts, ends], dim=1).float()


def window_samples(starts_s: torch.Tensor, window_s: float) -> torch.Tensor:
    """(W, 2) int64 [first, end) sample of each window from starts in seconds (rounded)."""
    starts = torch.tensor([round(float(s) * SAMPLE_RATE) for s in starts_s], dtype=torch.int64)
    return torch.stack([starts, starts + round(window_s * SAMPLE_RATE)], dim=1)


def imagebind_window_samples(num_samples: int, num_windows: int, window_s: float) -> torch.Tensor:
    """(W, 2) int64 [first, end) sample of each window exactly as ImageBind cuts them.

    Source: ``imagebind/data.py::load_and_transform_audio_data`` (the loader GroundingGPT's
    ``lego/serve/cli.py`` and ``lego/train/train.py`` call), with pytorchvideo's
    ``ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=3)``: the duration is
    the *resampled* length / 16000 (a float); the room ``Fraction(max(duration - 2, 0))``
    (float subtraction, then exact); window i starts at ``room / W * i`` and ends 2 s later,
    both converted to samples by ``int(t * 16000)``: truncated, where ``window_samples``
    rounds (one sample apart, e.g. 5.5 s: 18666 vs 18667). Ends past the file are cut by
    the slicing.
    """
    room = Fraction(max(num_samples / SAMPLE_RATE - window_s, 0))
    spans = []
    for i in range(num_windows):
        start = room / num_windows * i
        spans.append((int(start * SAMPLE_RATE), int((start + Fraction(window_s)) * SAMPLE_RATE)))
    return torch.tensor(spans, dtype=torch.int64)


def window_fbanks(
    wave: torch.Tensor,
    spans: torch.Tensor,
    num_mel_bins: int,
    target_frames: int,
    mean: float,
    std: float,
) -> torch.Tensor:
    """Normalised log-mel features of each window of a 16 kHz mono waveform.

    Args:
        wave: (N,) float32 samples at ``SAMPLE_RATE``.
        spans: (W, 2) [first, end) sample of each window (``window_samples``); a window past
            the end of ``wave`` is shorter.
        num_mel_bins, target_frames: feature size (128 x 204 for ImageBind).
        mean, std: normalisation statistics of the log-mel values.

    Returns:
        (W, 1, num_mel_bins, target_frames) float32: one 1-channel "image" per window.
    """
    clips = [wave[int(first):int(end)] for first, end in spans]
    fbanks = [fit_frames(log_mel(clip, num_mel_bins), target_frames) for clip in clips]
    return ((torch.stack(fbanks) - mean) / std).unsqueeze(1)


def log_mel(clip: torch.Tensor, num_mel_bins: int) -> torch.Tensor:
    """(num_mel_bins, frames) Kaldi log-mel filterbank of a (n,) 16 kHz clip.

    A clip shorter than one 25 ms frame (400 samples, e.g. a one-sample file) is zero-padded
    at the end to one frame, so every file yields at least one frame of features.
    """
    # ImageBind removes each clip's DC offset first (over all channels, before kaldi takes
    # channel 0; kaldi's per-frame DC removal cancels any constant, so this is equivalent).
    clip = clip - clip.mean()
    if clip.numel() < FRAME_LENGTH_SAMPLES:
        clip = F.pad(clip, (0, FRAME_LENGTH_SAMPLES - clip.numel()))
    fbank = kaldi.fbank(
        clip.unsqueeze(0),  # (1, n): kaldi reads one channel
        sample_frequency=SAMPLE_RATE,
        num_mel_bins=num_mel_bins,
        frame_length=FRAME_LENGTH_MS,
        frame_shift=FRAME_SHIFT_MS,
        window_type="hanning",
        htk_compat=True,
        use_energy=False,
        dither=0.0,  # deterministic features: no random noise added
    )  # (frames, num_mel_bins); silence gives log(float eps) = -15.94, never -inf
    return fbank.T


def fit_frames(fbank: torch.Tensor, target_frames: int) -> torch.Tensor:
    """Crop, or pad at the end with 0 (ImageBind's pad value), to ``target_frames`` columns."""
    frames = fbank.shape[1]
    if frames >= target_frames:
        return fbank[:, :target_frames]
    return F.pad(fbank, (0, target_frames - frames), value=0.0)
