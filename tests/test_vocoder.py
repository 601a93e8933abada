"""LPC resynthesis keeps the formants (the words) and replaces the voice source."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from edge_node.features import SAMPLE_RATE
from training.data.augment import Augmenter, AugmentSettings
from training.tts.vocoder import ResynthParams, resynthesise

pytestmark = pytest.mark.unit

FORMANTS_HZ = (700.0, 1200.0, 2600.0)


def _vowel(f0: float, seconds: float = 0.6) -> np.ndarray:
    """A pulse train at `f0` through three formant resonators: an "ah" with a known envelope."""
    n = int(seconds * SAMPLE_RATE)
    source = np.zeros(n)
    source[:: int(SAMPLE_RATE / f0)] = 1.0
    x = source
    for freq in FORMANTS_HZ:
        pole = 0.97 * np.exp(2j * np.pi * freq / SAMPLE_RATE)
        x = signal.lfilter([1.0], np.real(np.poly([pole, np.conj(pole)])), x)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def _f0(x: np.ndarray) -> float:
    mid = x[len(x) // 4 : 3 * len(x) // 4].astype(np.float64)
    r = np.correlate(mid, mid, "full")[len(mid) - 1 :]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    return SAMPLE_RATE / (lo + int(np.argmax(r[lo:hi])))


def _envelope_peaks(x: np.ndarray) -> list[float]:
    """Frequencies of the spectral envelope's three strongest peaks (smoothed spectrum)."""
    freqs, power = signal.welch(x, SAMPLE_RATE, nperseg=1024)
    smooth = np.convolve(10 * np.log10(power + 1e-12), np.ones(9) / 9, mode="same")
    peaks, props = signal.find_peaks(smooth, prominence=3)
    best = peaks[np.argsort(props["prominences"])[-3:]]
    return sorted(float(freqs[i]) for i in best)


def test_monotone_resynthesis_moves_pitch_and_keeps_formants() -> None:
    x = _vowel(120.0)
    params = ResynthParams(order=16, pitch_factor=1.0, monotone_hz=200.0, breath=0.0,
                           whisper=False)  # fmt: skip
    y = resynthesise(x, np.random.default_rng(0), params)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert np.isclose(np.max(np.abs(y)), np.max(np.abs(x)), rtol=1e-4)
    assert abs(_f0(x) - 120.0) < 6 and abs(_f0(y) - 200.0) < 10
    for want, got in zip(FORMANTS_HZ, _envelope_peaks(y), strict=True):
        assert abs(got - want) < 0.12 * want, (_envelope_peaks(y), FORMANTS_HZ)


def test_pitch_factor_scales_the_analysed_pitch() -> None:
    params = ResynthParams(order=16, pitch_factor=1.4, monotone_hz=0.0, breath=0.0,
                           whisper=False)  # fmt: skip
    y = resynthesise(_vowel(110.0), np.random.default_rng(1), params)
    assert abs(_f0(y) - 154.0) < 10


def test_whisper_has_no_pitch() -> None:
    params = ResynthParams(order=16, pitch_factor=1.0, monotone_hz=0.0, breath=0.0,
                           whisper=True)  # fmt: skip
    y = resynthesise(_vowel(150.0), np.random.default_rng(2), params).astype(np.float64)
    r = np.correlate(y, y, "full")[len(y) - 1 :]
    assert np.max(r[SAMPLE_RATE // 400 : SAMPLE_RATE // 60]) < 0.3 * r[0]


def test_short_and_silent_input_come_back_unchanged() -> None:
    rng = np.random.default_rng(3)
    short = np.ones(100, dtype=np.float32)
    assert np.array_equal(resynthesise(short, rng), short)
    silent = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert np.array_equal(resynthesise(silent, rng), silent)


def test_augmenter_resynthesises_only_speech() -> None:
    aug = Augmenter([], AugmentSettings(p_resynth=1.0, p_speed=0.0, p_reverb=0.0, p_noise=0.0,
                                        p_bandlimit=0.0, p_low_level=0.0, gain_db_range=(0, 0)))
    x = _vowel(120.0, seconds=0.5)
    speech = aug.waveform(x, SAMPLE_RATE, np.random.default_rng(4), is_speech=True)
    noise = aug.waveform(x, SAMPLE_RATE, np.random.default_rng(4), is_speech=False)
    placed = noise[np.flatnonzero(noise)[0] :][: len(x)]
    assert np.allclose(placed, x / np.max(np.abs(x)), atol=1e-6)
    assert not np.allclose(speech[np.flatnonzero(speech)[0] :][: len(x)], placed, atol=1e-2)
