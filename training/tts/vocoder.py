"""LPC analysis-resynthesis: the same words with a different voice source and synthesis method.

Leave-one-engine-out shows the model learning how an engine makes sound (its glottal source,
its spectral detail) along with what is said. Resynthesising a clip keeps its spectral envelope
(the formants, which carry the words) and replaces everything else: a pulse train at a shifted
or flattened pitch, or noise, filtered frame by frame through an all-pole model. That is how
formant and LPC synthesisers make speech, so a clip of one engine comes out sounding like none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, signal

from edge_node.features import SAMPLE_RATE

_HOP = SAMPLE_RATE // 100  # 10 ms
_FRAME = SAMPLE_RATE * 25 // 1000  # 25 ms analysis window
_PREEMPHASIS = 0.97
_F0_RANGE_HZ = (60.0, 400.0)


@dataclass(frozen=True)
class ResynthParams:
    """One draw of the resynthesis voice."""

    order: int
    """LPC order: lower keeps only the broad formant envelope."""
    pitch_factor: float
    """Multiplies the analysed f0 (the envelope is untouched: pitch moves, formants do not)."""
    monotone_hz: float
    """When > 0, a flat pitch at this frequency instead of the analysed contour."""
    breath: float
    """Share of noise mixed into voiced excitation."""
    whisper: bool
    """Noise excitation throughout (no pitch at all)."""

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ResynthParams:
        return cls(
            order=int(rng.integers(12, 21)),
            pitch_factor=float(rng.uniform(0.7, 1.45)),
            monotone_hz=float(rng.uniform(90.0, 260.0)) if rng.random() < 0.25 else 0.0,
            breath=float(rng.uniform(0.0, 0.35)),
            whisper=bool(rng.random() < 0.1),
        )


def _frames(x: np.ndarray) -> np.ndarray:
    """Hann-windowed analysis frames centred on every hop."""
    padded = np.pad(x, (_FRAME // 2, _FRAME))
    count = 1 + len(x) // _HOP
    index = np.arange(count)[:, None] * _HOP + np.arange(_FRAME)[None, :]
    return padded[index] * np.hanning(_FRAME).astype(np.float32)


def _autocorrelation(frames: np.ndarray, lags: int) -> np.ndarray:
    n_fft = 1 << int(np.ceil(np.log2(2 * _FRAME)))
    spectrum = np.fft.rfft(frames, n_fft, axis=1)
    return np.fft.irfft(spectrum.real**2 + spectrum.imag**2, n_fft, axis=1)[:, :lags]


def _lpc(r: np.ndarray, order: int) -> tuple[np.ndarray, float]:
    """All-pole coefficients [1, a1..ap] and prediction-error power from an autocorrelation."""
    r = r[: order + 1].copy()
    r[0] = r[0] * (1.0 + 1e-6) + 1e-9  # white-noise floor keeps the solve well-conditioned
    r[1:] *= np.exp(-0.5 * (2 * np.pi * 60.0 * np.arange(1, order + 1) / SAMPLE_RATE) ** 2)
    a = linalg.solve_toeplitz(r[:order], -r[1 : order + 1])
    error = float(r[0] + np.dot(a, r[1 : order + 1]))
    return np.concatenate(([1.0], a)), max(error, 1e-12)


def _pitch(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame f0 (Hz) and voicing strength from the autocorrelation peak."""
    lo = int(SAMPLE_RATE / _F0_RANGE_HZ[1])
    hi = int(SAMPLE_RATE / _F0_RANGE_HZ[0])
    search = r[:, lo:hi]
    lag = lo + np.argmax(search, axis=1)
    strength = search.max(axis=1) / np.maximum(r[:, 0], 1e-12)
    return SAMPLE_RATE / lag, strength


def resynthesise(x: np.ndarray, rng: np.random.Generator,
                 params: ResynthParams | None = None) -> np.ndarray:
    """`x` (16 kHz float) spoken again through an LPC vocoder with a new voice source."""
    p = params or ResynthParams.draw(rng)
    x = np.asarray(x, dtype=np.float64)
    if x.size < _FRAME:
        return x.astype(np.float32)
    emphasised = signal.lfilter([1.0, -_PREEMPHASIS], [1.0], x)
    r_env = _autocorrelation(_frames(emphasised), p.order + 1)
    r_pitch = _autocorrelation(_frames(x), int(SAMPLE_RATE / _F0_RANGE_HZ[0]) + 1)
    f0, strength = _pitch(r_pitch)
    energy = r_pitch[:, 0]
    voiced = (strength > 0.35) & (energy > 1e-4 * energy.max()) & (not p.whisper)
    f0 = signal.medfilt(f0, 5)
    f0 = np.full_like(f0, p.monotone_hz) if p.monotone_hz > 0 else f0 * p.pitch_factor
    out = np.zeros(x.size)
    state = np.zeros(p.order)
    phase = 0.0
    for t in range(len(f0)):
        start = t * _HOP
        n = min(_HOP, x.size - start)
        if n <= 0:
            break
        a, error = _lpc(r_env[t], p.order)
        noise = rng.standard_normal(n)
        if voiced[t]:
            cycles = phase + np.arange(1, n + 1) * f0[t] / SAMPLE_RATE
            pulses = np.diff(np.floor(np.concatenate(([phase], cycles)))) * np.sqrt(
                SAMPLE_RATE / f0[t])
            phase = float(cycles[-1] % 1.0)
            excitation = np.sqrt(1.0 - p.breath) * pulses + np.sqrt(p.breath) * noise
        else:
            excitation = noise
        gain = np.sqrt(error / _FRAME * 2.7)  # Hann window power (3/8) scaled back
        out[start : start + n], state = signal.lfilter([gain], a, excitation, zi=state)
    out = signal.lfilter([1.0], [1.0, -_PREEMPHASIS], out)
    peak_in, peak_out = np.max(np.abs(x)), np.max(np.abs(out))
    if not np.isfinite(peak_out) or peak_out == 0.0:
        return x.astype(np.float32)
    return (out * (peak_in / peak_out)).astype(np.float32)
