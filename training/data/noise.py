"""Offline background noise for `_silence_` clips and stream recordings.

Everything is generated from a seeded RNG (no recorded noise is downloaded), covering the
backgrounds a Raspberry Pi microphone hears in a quiet home: nothing, electronic hiss,
mains hum, fans and the self-noise of a cheap microphone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import signal

from edge_node.audio.base import SAMPLE_RATE

NOISE_KINDS: tuple[str, ...] = (
    "digital_silence",
    "white",
    "pink",
    "brown",
    "hum50",
    "hum60",
    "fan",
    "mic_floor",
)
# RMS level range (dBFS) per kind; "low-level" because speech must stay intelligible.
LEVELS_DBFS: dict[str, tuple[float, float]] = {
    "white": (-70.0, -45.0),
    "pink": (-65.0, -38.0),
    "brown": (-60.0, -35.0),
    "hum50": (-65.0, -40.0),
    "hum60": (-65.0, -40.0),
    "fan": (-55.0, -32.0),
    "mic_floor": (-72.0, -50.0),
}


def _spectral(n: int, rng: np.random.Generator, exponent: float, sr: int) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (above 20 Hz)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    gain = np.zeros_like(f)
    band = f >= 20.0
    gain[band] = f[band] ** (-exponent / 2.0)
    return np.fft.irfft(spec * gain, n)


def _hum(n: int, rng: np.random.Generator, mains: float, sr: int) -> np.ndarray:
    """Mains hum: jittered fundamental with odd-heavy harmonics (transformer buzz)."""
    t = np.arange(n) / sr
    f = mains * (1.0 + rng.uniform(-0.002, 0.002))
    slope = rng.uniform(0.5, 1.5)
    x = np.zeros(n)
    for k in range(1, 9):
        amp = rng.uniform(0.2, 1.0) * k ** (-slope) * (1.0 if k % 2 else rng.uniform(0.1, 0.6))
        x += amp * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 2 * np.pi))
    x *= 1.0 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t)
    return x + 0.03 * np.std(x) * rng.standard_normal(n)


def _fan(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Low-passed noise with slow amplitude modulation and an optional blade tone."""
    t = np.arange(n) / sr
    sos = signal.butter(2, rng.uniform(200.0, 1500.0), "lowpass", fs=sr, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n))
    depth = rng.uniform(0.05, 0.3)
    x *= 1.0 + depth * np.sin(2 * np.pi * rng.uniform(0.1, 2.0) * t + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:
        tone = np.sin(2 * np.pi * rng.uniform(80.0, 300.0) * t)
        x += rng.uniform(0.05, 0.2) * np.std(x) * np.sqrt(2) * tone
    return x


def _mic_floor(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Cheap electret microphone: hiss tilted towards low frequencies, sometimes faint hum."""
    hiss = signal.sosfilt(
        signal.butter(1, 100.0, "highpass", fs=sr, output="sos"), rng.standard_normal(n)
    )
    pink = _spectral(n, rng, 1.0, sr)
    x = hiss / np.std(hiss) + rng.uniform(0.3, 1.0) * pink / (np.std(pink) + 1e-12)
    if rng.random() < 0.5:
        hum = _hum(n, rng, 50.0 if rng.random() < 0.5 else 60.0, sr)
        x += rng.uniform(0.05, 0.2) * np.std(x) * hum / np.std(hum)
    return x


def make_noise(
    kind: str,
    seconds: float,
    rng: np.random.Generator,
    sr: int = SAMPLE_RATE,
    level_dbfs: float | None = None,
) -> np.ndarray:
    """`seconds` of `kind` noise as float32, RMS set to `level_dbfs` (random in range if None)."""
    n = int(round(seconds * sr))
    if kind == "digital_silence":
        return np.zeros(n, dtype=np.float32)
    if kind not in LEVELS_DBFS:
        raise ValueError(f"unknown noise kind {kind!r}; known: {NOISE_KINDS}")
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        x = _spectral(n, rng, 1.0, sr)
    elif kind == "brown":
        x = _spectral(n, rng, 2.0, sr)
    elif kind in ("hum50", "hum60"):
        x = _hum(n, rng, float(kind[3:]), sr)
    elif kind == "fan":
        x = _fan(n, rng, sr)
    else:
        x = _mic_floor(n, rng, sr)
    level = rng.uniform(*LEVELS_DBFS[kind]) if level_dbfs is None else level_dbfs
    rms = float(np.sqrt(np.mean(x**2))) if n else 1.0
    return (x * (10.0 ** (level / 20.0) / max(rms, 1e-12))).astype(np.float32)


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def noise_bank(seed: int, extra: Sequence[np.ndarray] = ()) -> list[np.ndarray]:
    """Background noise for augmentation: every generated kind, a few seeds each, and `extra`
    (recorded noise)."""
    rng = np.random.default_rng([seed, 77])
    bank = [make_noise(kind, 20.0, rng) for kind in NOISE_KINDS if kind != "digital_silence"
            for _ in range(3)]
    return bank + list(extra)
