"""The log-mel profile: Hann-windowed power spectra through triangular mel filters, log, and a
per-window normalisation. `edge_node.features` binds it to manifests and streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_node.audio.base import SAMPLE_RATE

NORMALISATIONS = ("none", "cmn", "mvn", "pcen")
LOG_FLOOR = 1e-10
"""Added to mel power before the log: far below any real microphone's noise floor."""
PCEN_TIME_CONSTANT_S = 0.4
"""Per-channel energy normalisation (Wang et al. 2017), librosa's defaults: the smoother's
time constant, the gain-control exponent, the bias and the root compression. Mel energies are
taken at int16 scale, the scale those defaults were chosen for."""
PCEN_GAIN = 0.98
PCEN_BIAS = 2.0
PCEN_POWER = 0.5
PCEN_EPS = 1e-6
PCEN_SCALE = 32768.0**2


def mel_filterbank(n_mels: int, n_fft: int, rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular HTK-style mel filters, shape (n_fft // 2 + 1, n_mels)."""

    def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    bins = np.linspace(0.0, rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


@dataclass(frozen=True)
class LogMelParams:
    """Parameters of the log-mel profile; stored in each model's manifest."""

    n_mels: int = 40
    """Number of mel bands."""
    window_ms: int = 30
    """Analysis window length (Hann)."""
    hop_ms: int = 20
    """Frame step; the streaming hop must be a multiple of it."""
    n_fft: int = 512
    """FFT size (>= window samples)."""
    fmin: float = 20.0
    """Lowest mel edge in Hz."""
    fmax: float = 7600.0
    """Highest mel edge in Hz."""
    normalisation: str = "mvn"
    """Per-window normalisation: none, cmn (per-band mean removal), mvn (cmn + global std) or
    pcen (per-channel energy normalisation, its smoother started on the window's first frame)."""
    clip_ms: int = 1000
    """Length of the audio window the model sees."""

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"unknown log-mel normalisation {self.normalisation!r}; use one of {NORMALISATIONS}"
            )
        if self.window_samples > self.n_fft:
            raise ValueError("log-mel window is longer than n_fft")
        if self.clip_samples < self.window_samples or self.hop_samples <= 0:
            raise ValueError("log-mel clip must hold at least one window")

    @property
    def window_samples(self) -> int:
        return SAMPLE_RATE * self.window_ms // 1000

    @property
    def hop_samples(self) -> int:
        return SAMPLE_RATE * self.hop_ms // 1000

    @property
    def clip_samples(self) -> int:
        return SAMPLE_RATE * self.clip_ms // 1000

    @property
    def n_frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.hop_samples


class LogMel:
    """Log-mel frames and their per-window normalisation."""

    def __init__(self, params: LogMelParams) -> None:
        self.params = params
        n = params.window_samples
        # Periodic Hann, as scipy.signal.get_window("hann", n) gives.
        self.window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
        self.filters = mel_filterbank(
            params.n_mels, params.n_fft, SAMPLE_RATE, params.fmin, params.fmax
        )
        self._frame_indices: dict[int, np.ndarray] = {}
        frames_per_constant = PCEN_TIME_CONSTANT_S * 1000.0 / params.hop_ms
        self._pcen_smoothing = (np.sqrt(1.0 + 4.0 * frames_per_constant**2) - 1.0) / (
            2.0 * frames_per_constant**2)
        """PCEN smoother weight of each new frame, from its time constant (librosa's formula)."""

    @property
    def shape(self) -> tuple[int, int]:
        return (self.params.n_frames, self.params.n_mels)

    def _frame_index(self, count: int) -> np.ndarray:
        """Sample indices of `count` frames, kept per count (a hop always brings the same)."""
        index = self._frame_indices.get(count)
        if index is None:
            p = self.params
            index = (np.arange(count)[:, None] * p.hop_samples
                     + np.arange(p.window_samples)[None, :])
            self._frame_indices[count] = index
        return index

    def frames(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel energies of every complete frame in `audio`, shape (n, n_mels).

        Runs on every 100 ms hop of the live node, so it avoids numpy's slower conveniences
        (`sliding_window_view`, `abs` of a complex array): ~3x less time per hop.
        """
        p = self.params
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        count = 0 if audio.size < p.window_samples else 1 + (audio.size - p.window_samples) // (
            p.hop_samples
        )
        if count == 0:
            return np.zeros((0, p.n_mels), dtype=np.float32)
        framed = audio[self._frame_index(count)] * self.window
        spectrum = np.fft.rfft(framed, n=p.n_fft, axis=1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
        energies = power @ self.filters
        energies += LOG_FLOOR
        return np.log(energies, out=energies)

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        """Per-window normalisation; makes the model indifferent to gain and channel colour.

        `mvn`: each band's mean removed, then one scale for the whole window (its RMS), so the
        spectral shape within the window is kept.
        """
        mode = self.params.normalisation
        if mode == "none":
            return np.array(frames, dtype=np.float32)
        frames = np.asarray(frames, dtype=np.float32)
        if mode == "pcen":
            return self._pcen(frames)
        centred = frames - np.add.reduce(frames, axis=0) * np.float32(1.0 / len(frames))
        if mode == "cmn":
            return centred
        flat = centred.ravel()
        centred *= np.float32(1.0 / (np.sqrt(flat.dot(flat) / flat.size) + 1e-3))
        return centred

    def _pcen(self, log_frames: np.ndarray) -> np.ndarray:
        """PCEN of one window's frames: an automatic gain control per band (each energy divided
        by a smoothed past of its band) then root compression. Started on the window's first
        frame, so a streamed window gives the numbers a cut-out window gives."""
        energy = np.exp(log_frames.astype(np.float64)) * PCEN_SCALE
        s = self._pcen_smoothing
        # A one-pole smoother per band, written out: scipy.signal would cost the node ~60 MB.
        smooth = np.empty_like(energy)
        level = energy[0]
        for t, frame in enumerate(energy):
            level = (1.0 - s) * level + s * frame
            smooth[t] = level
        gain = (PCEN_EPS + smooth) ** -PCEN_GAIN
        pcen = (energy * gain + PCEN_BIAS) ** PCEN_POWER - PCEN_BIAS**PCEN_POWER
        return pcen.astype(np.float32)

    def compute(self, window: np.ndarray) -> np.ndarray:
        """Normalised log-mel of one window of exactly `params.clip_samples`."""
        return self.normalise(self.frames(window))
