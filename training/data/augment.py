"""Waveform and feature augmentation: make clean synthetic speech look like a Pi in a room.

Each transform answers a way real audio differs from a TTS clip: where in the 1 s window the
word falls (time shift), speaker size (speed perturbation moves pitch and formants together, a
vocal-tract-length change), rooms (reverb), background noise at a random SNR, a cheap MEMS
microphone (band-limiting), the SPH0645's DC offset and very low level, and SpecAugment masks on
the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal

from edge_node.features import SAMPLE_RATE
from edge_node.setting import check_limits, setting
from training.tts.vocoder import resynthesise


@dataclass(frozen=True)
class AugmentSettings:
    """Probabilities and ranges of each transform (all drawn per example)."""

    speed_range: tuple[float, float] = (0.85, 1.18)
    """Resampling factor: <1 lowers pitch and formants (a bigger speaker) and slows down."""
    p_speed: float = setting(0.8, low=0.0, high=1.0)
    p_trim: float = setting(0.0, low=0.0, high=1.0)
    """Share of speech clips cut to their loud part (`speech_span`) before they are placed at a
    random offset: a recorded clip is a word padded to exactly one window, which placing alone
    never shifts, while the live detector's window slides over every word."""
    p_resynth: float = setting(0.0, low=0.0, high=1.0)
    """Share of speech re-spoken through an LPC vocoder with a new voice source
    (`training.tts.vocoder`): the words without the engine's way of making sound."""
    p_reverb: float = setting(0.4, low=0.0, high=1.0)
    rt60_range: tuple[float, float] = (0.1, 0.7)
    p_noise: float = setting(0.8, low=0.0, high=1.0)
    snr_db_range: tuple[float, float] = (0.0, 30.0)
    p_bandlimit: float = setting(0.5, low=0.0, high=1.0)
    p_low_level: float = setting(0.2, low=0.0, high=1.0)
    """Scale to the SPH0645's very low level (-60..-40 dBFS) with a DC offset."""
    gain_db_range: tuple[float, float] = (-30.0, 0.0)
    time_masks: int = setting(2, low=0)
    time_mask_max: int = setting(6, low=0)
    freq_masks: int = setting(2, low=0)
    freq_mask_max: int = setting(6, low=0)
    p_specaugment: float = setting(0.6, low=0.0, high=1.0)

    def __post_init__(self) -> None:
        check_limits(self, "augment")
        for name in ("speed_range", "rt60_range", "snr_db_range", "gain_db_range"):
            low, high = (tuple(getattr(self, name)) + (0.0, 0.0))[:2]
            if len(getattr(self, name)) != 2 or not low <= high:
                raise ValueError(f"augment.{name} must be [low, high], got "
                                 f"{list(getattr(self, name))}")
        if self.speed_range[0] <= 0 or self.rt60_range[0] < 0:
            raise ValueError("augment.speed_range must be above 0 and rt60_range at least 0")


def place(clip: np.ndarray, length: int, rng: np.random.Generator,
          centre: bool = False) -> np.ndarray:
    """Put a clip into a window of `length` samples at a random offset (or crop a long one)."""
    out = np.zeros(length, dtype=np.float32)
    if clip.size >= length:
        spare = clip.size - length
        start = spare // 2 if centre else int(rng.integers(0, spare + 1))
        return clip[start : start + length].astype(np.float32)
    offset = (length - clip.size) // 2 if centre else int(rng.integers(0, length - clip.size + 1))
    out[offset : offset + clip.size] = clip
    return out


def speech_span(clip: np.ndarray, floor_db: float = 30.0) -> tuple[int, int]:
    """(start, end) samples of the part of a clip within `floor_db` of its loudest 20 ms
    frame, with 50 ms around it: a Speech Commands clip is a word padded to one second."""
    frame = SAMPLE_RATE // 50
    n = max(1, clip.size // frame)
    frames = np.zeros((n, frame))
    frames.flat[:min(clip.size, n * frame)] = clip[:n * frame]
    energy = np.mean(np.square(frames), axis=1) + 1e-12
    loud = np.flatnonzero(10 * np.log10(energy / energy.max()) > -floor_db)
    margin = SAMPLE_RATE // 20
    return (max(0, int(loud[0]) * frame - margin),
            min(clip.size, (int(loud[-1]) + 1) * frame + margin))


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `x` `factor` times faster by resampling (pitch and formants shift with it)."""
    ratio = Fraction(1.0 / factor).limit_denominator(50)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def room_impulse(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: direct path plus exponentially decaying noise."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.003 * SAMPLE_RATE)] = 0.0
    ir = 0.4 * tail / (np.sqrt(np.sum(tail**2)) + 1e-9)
    ir[0] = 1.0
    return ir.astype(np.float32)


def bandlimit(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap MEMS microphone and small enclosure: weak bass, rolled-off treble."""
    low = rng.uniform(80.0, 350.0)
    high = rng.uniform(3400.0, 7500.0)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


class Augmenter:
    """Applies `AugmentSettings` to 16 kHz clips, drawing noise from a bank of recordings."""

    def __init__(self, noises: Sequence[np.ndarray], settings: AugmentSettings | None = None):
        self.noises = [n.astype(np.float32) for n in noises if n.size >= SAMPLE_RATE]
        self.settings = settings or AugmentSettings()

    def noise_segment(self, length: int, rng: np.random.Generator) -> np.ndarray:
        if not self.noises:
            return (rng.standard_normal(length) * 0.01).astype(np.float32)
        noise = self.noises[int(rng.integers(len(self.noises)))]
        if noise.size <= length:
            noise = np.tile(noise, length // noise.size + 1)
        start = int(rng.integers(0, noise.size - length + 1))
        return noise[start : start + length]

    def waveform(self, clip: np.ndarray, length: int, rng: np.random.Generator,
                 is_speech: bool = True) -> np.ndarray:
        """One augmented window of `length` samples."""
        s = self.settings
        x = np.asarray(clip, dtype=np.float32)
        if is_speech and x.size and rng.random() < s.p_trim:
            start, end = speech_span(x)
            x = x[start:end]
        if is_speech and rng.random() < s.p_resynth:
            x = resynthesise(x, rng)
        if is_speech and rng.random() < s.p_speed:
            x = change_speed(x, rng.uniform(*s.speed_range))
        if is_speech and rng.random() < s.p_reverb:
            ir = room_impulse(rng.uniform(*s.rt60_range), rng)
            x = signal.fftconvolve(x, ir)[: x.size + ir.size // 4].astype(np.float32)
        x = place(x, length, rng)
        if is_speech and rng.random() < s.p_noise:
            noise = self.noise_segment(length, rng)
            snr = rng.uniform(*s.snr_db_range)
            x = x + noise * (rms(x) / (rms(noise) * 10 ** (snr / 20.0)))
        if rng.random() < s.p_bandlimit:
            x = bandlimit(x, rng)
        peak = float(np.max(np.abs(x))) or 1.0
        if rng.random() < s.p_low_level:
            level = 10 ** (rng.uniform(-60.0, -40.0) / 20.0)
            x = x / peak * level + rng.uniform(-0.5, 0.5) * level
        else:
            x = x / peak * 10 ** (rng.uniform(*s.gain_db_range) / 20.0)
        return x.astype(np.float32)

    def spec_augment(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SpecAugment-style time and frequency masks (set to the window mean, i.e. 0)."""
        s = self.settings
        if rng.random() >= s.p_specaugment:
            return features
        out = features.copy()
        frames, bands = out.shape
        for _ in range(s.time_masks):
            width = int(rng.integers(0, s.time_mask_max + 1))
            start = int(rng.integers(0, max(1, frames - width)))
            out[start : start + width, :] = 0.0
        for _ in range(s.freq_masks):
            width = int(rng.integers(0, s.freq_mask_max + 1))
            start = int(rng.integers(0, max(1, bands - width)))
            out[:, start : start + width] = 0.0
        return out
