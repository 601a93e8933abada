"""The one feature-extraction module, imported by the node AND by training.

Training and inference must preprocess identically (the lesson of the article this project grew
from, whose training skipped the normalisation its inference applied). Every model's manifest
names a feature profile and its parameters; `make_extractor` turns that into an extractor with
two entry points that give the same numbers:

- `compute(waveform)` for a 1 s clip (training, `classify`);
- `stream()` -> an incremental extractor for the live node that only computes the new frames of
  each hop (log-mel) and keeps a 1 s ring buffer of audio.

Profiles:

- ``stft129x124``: the article's pipeline, bit-for-bit: peak normalisation, peak-to-peak scaling
  to [-1, 1], zero padding to 16000 samples, ``scipy.signal.stft(fs=16000, nperseg=255,
  noverlap=124, nfft=256)`` magnitude, shape (129, 124).
- ``logmel``: log mel energies (default 40 bands, 30 ms window, 20 ms hop -> 49 frames per
  second) with a per-window normalisation chosen by the manifest.
- ``speech-embedding``: Google's speech_embedding network over the window (96 values every
  50 ms by default; `edge_node.speech_embedding`), pre-trained on real speech.
- ``concat``: several profiles over the same window, each flattened and scaled, joined into one
  vector: one model input (so manifests, OTA and the runtime stay single-input) for a model
  whose members each read their own part (`ensemble_spec`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edge_node.speech_embedding import EmbeddingStream, SpeechEmbedding

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE

STFT_PROFILE = "stft129x124"
LOGMEL_PROFILE = "logmel"
EMBEDDING_PROFILE = "speech-embedding"
CONCAT_PROFILE = "concat"
PROFILES = (STFT_PROFILE, LOGMEL_PROFILE, EMBEDDING_PROFILE, CONCAT_PROFILE)
EMBEDDING_SCALE = 0.1
"""Scale of embeddings (std ~16) inside a concat vector, to the range of normalised log-mel
(std 1): an int8 model quantises its one input tensor with one scale."""
NORMALISATIONS = ("none", "cmn", "mvn")
LOG_FLOOR = 1e-10
"""Added to mel power before the log: far below any real microphone's noise floor."""


class FeatureConfigError(ValueError):
    """A manifest asks for a feature profile or parameter this module does not have."""


def article_normalise(waveform: np.ndarray) -> np.ndarray:
    """The article's inference scaling: divide by the peak, then stretch peak-to-peak to [-1, 1].

    Constant input (digital silence, a bare DC offset) gives zeros instead of NaN, which the
    article's code produced.
    """
    x = np.asarray(waveform, dtype=np.float64)
    peak = np.max(np.abs(x)) if x.size else 0.0
    if peak <= 0.0 or np.ptp(x) <= 0.0:
        return np.zeros(CLIP_SAMPLES, dtype=np.float32)
    x = x / peak
    x = 2.0 * (x - np.min(x)) / np.ptp(x) - 1.0
    padded = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    padded[: min(x.size, CLIP_SAMPLES)] = x[:CLIP_SAMPLES]
    return padded.astype(np.float32)


def stft129x124(waveform: np.ndarray) -> np.ndarray:
    """The article's spectrogram of a 1 s clip: (129, 124) float32 magnitudes."""
    from scipy import signal  # only this profile needs it; scipy.signal costs ~60 MB of RAM

    x = article_normalise(waveform)
    _, _, spec = signal.stft(x, fs=SAMPLE_RATE, nperseg=255, noverlap=124, nfft=256)
    return np.abs(spec).astype(np.float32)


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
    """Per-window normalisation: none, cmn (per-band mean removal) or mvn (cmn + global std)."""
    clip_ms: int = 1000
    """Length of the audio window the model sees."""

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise FeatureConfigError(
                f"unknown log-mel normalisation {self.normalisation!r}; use one of {NORMALISATIONS}"
            )
        if self.window_samples > self.n_fft:
            raise FeatureConfigError("log-mel window is longer than n_fft")
        if self.clip_samples < self.window_samples or self.hop_samples <= 0:
            raise FeatureConfigError("log-mel clip must hold at least one window")

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


@dataclass(frozen=True)
class EmbeddingParams:
    """Parameters of the speech-embedding profile; stored in each model's manifest."""

    step_ms: int = 50
    """Time between the window's embeddings; the streaming hop must be a multiple of it."""
    clip_ms: int = 1000
    """Length of the audio window the model sees; a multiple of `step_ms`."""

    def __post_init__(self) -> None:
        if self.step_ms < 30 or self.step_ms % 10 or self.clip_ms % self.step_ms:
            raise FeatureConfigError(
                "speech-embedding step_ms must be a multiple of 10, at least 30, dividing clip_ms")
        if self.count < 1:
            raise FeatureConfigError("speech-embedding clip_ms is too short for one embedding")

    @property
    def step_samples(self) -> int:
        return SAMPLE_RATE * self.step_ms // 1000

    @property
    def clip_samples(self) -> int:
        return SAMPLE_RATE * self.clip_ms // 1000

    @property
    def count(self) -> int:
        """Embeddings per window."""
        from edge_node.speech_embedding import embedding_count

        return embedding_count(self.clip_samples, self.step_samples)


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
        centred = frames - np.add.reduce(frames, axis=0) * np.float32(1.0 / len(frames))
        if mode == "cmn":
            return centred
        flat = centred.ravel()
        centred *= np.float32(1.0 / (np.sqrt(flat.dot(flat) / flat.size) + 1e-3))
        return centred

    def compute(self, waveform: np.ndarray) -> np.ndarray:
        clip = centre_clip(waveform, self.params.clip_samples)
        return self.normalise(self.frames(clip))


def fit_clip(waveform: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad or cut a waveform to exactly `length` samples (the article's way: the start)."""
    x = np.asarray(waveform, dtype=np.float32)
    if x.size >= length:
        return x[:length]
    return np.pad(x, (0, length - x.size))


def centre_clip(waveform: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """A clip as training presents it: a short one centred in silence, a long one cut to its
    loudest `length` samples."""
    x = np.asarray(waveform, dtype=np.float32)
    if x.size < length:
        before = (length - x.size) // 2
        return np.pad(x, (before, length - x.size - before))
    energy = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    return x[start : start + length]


@dataclass(frozen=True)
class FeatureSpec:
    """What a manifest says about features: the profile name and its parameters."""

    profile: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        if not isinstance(data, dict) or "profile" not in data:
            raise FeatureConfigError("manifest 'features' must be an object with a 'profile'")
        return cls(profile=str(data["profile"]), params=dict(data.get("params") or {}))


def logmel_spec(**overrides: Any) -> FeatureSpec:
    """The default log-mel profile as a manifest entry."""
    return FeatureSpec(LOGMEL_PROFILE, asdict(LogMelParams(**overrides)))


def embedding_spec(**overrides: Any) -> FeatureSpec:
    """The default speech-embedding profile as a manifest entry."""
    return FeatureSpec(EMBEDDING_PROFILE, asdict(EmbeddingParams(**overrides)))


def ensemble_spec() -> FeatureSpec:
    """Log-mel (for a TC-ResNet) and speech embeddings (for a dense head) of one window."""
    return FeatureSpec(CONCAT_PROFILE, {"parts": [
        {**logmel_spec().to_json(), "scale": 1.0},
        {**embedding_spec().to_json(), "scale": EMBEDDING_SCALE},
    ]})


def spec_for_profile(profile: str) -> FeatureSpec:
    """A profile's manifest entry with default parameters."""
    if profile == LOGMEL_PROFILE:
        return logmel_spec()
    if profile == EMBEDDING_PROFILE:
        return embedding_spec()
    if profile == STFT_PROFILE:
        return FeatureSpec(STFT_PROFILE)
    if profile == CONCAT_PROFILE:
        return ensemble_spec()
    raise FeatureConfigError(f"unknown feature profile {profile!r}; known: {PROFILES}")


class FeatureExtractor:
    """A profile bound to its parameters: one-shot `compute` and streaming `stream`."""

    def __init__(self, spec: FeatureSpec, runtime: str | None = None) -> None:
        self.spec = spec
        self.logmel: LogMel | None = None
        self.embedding: SpeechEmbedding | None = None
        self.parts: list[tuple[FeatureExtractor, float]] = []
        if spec.profile == CONCAT_PROFILE:
            self._init_parts(spec, runtime)
        elif spec.profile == STFT_PROFILE:
            if spec.params:
                raise FeatureConfigError(f"profile {STFT_PROFILE} takes no parameters")
            self.shape: tuple[int, ...] = (129, 124)
            self.clip_samples = CLIP_SAMPLES
            self.frame_step = 1
        elif spec.profile == LOGMEL_PROFILE:
            try:
                params = LogMelParams(**spec.params)
            except TypeError as exc:
                raise FeatureConfigError(f"bad log-mel parameters: {exc}") from exc
            self.logmel = LogMel(params)
            self.shape = self.logmel.shape
            self.clip_samples = params.clip_samples
            self.frame_step = params.hop_samples
        elif spec.profile == EMBEDDING_PROFILE:
            from edge_node.speech_embedding import EmbeddingUnavailableError, SpeechEmbedding

            try:
                self.embedding_params = EmbeddingParams(**spec.params)
            except TypeError as exc:
                raise FeatureConfigError(f"bad speech-embedding parameters: {exc}") from exc
            try:
                self.embedding = SpeechEmbedding(runtime)
            except EmbeddingUnavailableError as exc:
                raise FeatureConfigError(str(exc)) from exc
            from edge_node.speech_embedding import EMBEDDING_SIZE

            self.shape = (self.embedding_params.count, EMBEDDING_SIZE)
            self.clip_samples = self.embedding_params.clip_samples
            self.frame_step = self.embedding_params.step_samples
        else:
            raise FeatureConfigError(f"unknown feature profile {spec.profile!r}; known: {PROFILES}")

    def _init_parts(self, spec: FeatureSpec, runtime: str | None) -> None:
        entries = spec.params.get("parts")
        if set(spec.params) != {"parts"} or not isinstance(entries, list) or not entries:
            raise FeatureConfigError("concat profile takes one parameter: a list of 'parts'")
        for entry in entries:
            if not isinstance(entry, dict):
                raise FeatureConfigError("each concat part must be an object")
            part = FeatureSpec.from_json(entry)
            if part.profile == CONCAT_PROFILE:
                raise FeatureConfigError("concat parts cannot be concat profiles")
            try:
                scale = float(entry.get("scale", 1.0))
            except (TypeError, ValueError) as exc:
                raise FeatureConfigError(f"concat part scale must be a number: {exc}") from exc
            self.parts.append((FeatureExtractor(part, runtime), scale))
        lengths = {extractor.clip_samples for extractor, _ in self.parts}
        if len(lengths) != 1:
            raise FeatureConfigError("concat parts must share one window length")
        self.clip_samples = lengths.pop()
        self.frame_step = int(np.lcm.reduce([e.frame_step for e, _ in self.parts]))
        self.shape = (sum(int(np.prod(e.shape)) for e, _ in self.parts),)

    @property
    def is_spectrogram(self) -> bool:
        """Time x frequency features (SpecAugment and mel-axis warping make sense on them)."""
        return self.embedding is None and not self.parts

    @property
    def part_shapes(self) -> list[tuple[int, ...]]:
        """The shape of each part of a concat vector (or of the one feature matrix)."""
        return [e.shape for e, _ in self.parts] if self.parts else [self.shape]

    def compute_parts(self, waveform: np.ndarray) -> list[np.ndarray]:
        """Each part's own features (unscaled), e.g. to augment the spectrogram parts."""
        if not self.parts:
            return [self.compute(waveform)]
        return [extractor.compute(waveform) for extractor, _ in self.parts]

    def join(self, parts: list[np.ndarray]) -> np.ndarray:
        """The model input made of `compute_parts` output."""
        if not self.parts:
            return parts[0]
        return np.concatenate([np.asarray(x, dtype=np.float32).reshape(-1) * np.float32(scale)
                               for x, (_, scale) in zip(parts, self.parts, strict=True)])

    def compute(self, waveform: np.ndarray) -> np.ndarray:
        """Features of one clip; a clip of exactly the window length is used as it is."""
        if self.parts:
            return self.join(self.compute_parts(waveform))
        if self.embedding is not None:
            p = self.embedding_params
            return self.embedding.window_features(
                centre_clip(waveform, self.clip_samples), p.step_samples)
        if self.logmel is None:
            return stft129x124(fit_clip(waveform, self.clip_samples))
        return self.logmel.compute(waveform)

    def stream(self) -> StreamingFeatures:
        return StreamingFeatures(self)


class StreamingFeatures:
    """Incremental features for a sliding window over a live stream.

    Audio is pushed in hops; `features()` returns the features of the most recent clip-length
    window, identical to `compute()` on that window when the hop is a multiple of the frame step.
    For log-mel and speech embeddings only the frames (and embeddings) completed by each push
    are computed; earlier ones are kept in a ring. The article's STFT profile normalises the
    whole window, so it is recomputed.
    """

    def __init__(self, extractor: FeatureExtractor) -> None:
        self.extractor = extractor
        self.clip_samples = extractor.clip_samples
        self.audio = np.zeros(self.clip_samples, dtype=np.float32)
        self.samples_seen = 0
        logmel = extractor.logmel
        if logmel is not None:
            p = logmel.params
            self._pending = np.zeros(0, dtype=np.float32)
            self._frames = np.full((p.n_frames, p.n_mels), np.log(LOG_FLOOR), dtype=np.float32)
        self._parts = [part.stream() for part, _ in extractor.parts]
        self._embeddings: EmbeddingStream | None = None
        if extractor.embedding is not None:
            from edge_node.speech_embedding import EmbeddingStream

            p_emb = extractor.embedding_params
            self._embeddings = EmbeddingStream(extractor.embedding, p_emb.step_samples, p_emb.count)
            # As if the stream had been preceded by silence, like the audio ring.
            self._embeddings.push(np.zeros(self.clip_samples, dtype=np.float32))

    def push(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        n = block.size
        if n >= self.clip_samples:
            self.audio[:] = block[-self.clip_samples :]
        elif n:
            self.audio[:-n] = self.audio[n:]
            self.audio[-n:] = block
        self.samples_seen += n
        for part in self._parts:
            part.push(block)
        if self._embeddings is not None and n:
            self._embeddings.push(block)
            return
        logmel = self.extractor.logmel
        if logmel is None or n == 0:
            return
        p = logmel.params
        data = np.concatenate([self._pending, block])
        new = logmel.frames(data)
        if len(new):
            consumed = len(new) * p.hop_samples
            self._pending = data[consumed:]
            keep = self._frames.shape[0]
            self._frames = np.concatenate([self._frames, new])[-keep:]
        else:
            self._pending = data

    def window_audio(self) -> np.ndarray:
        """The last clip-length of audio (zeros before the stream started)."""
        return self.audio

    def features(self) -> np.ndarray:
        if self._parts:
            return self.extractor.join([part.features() for part in self._parts])
        if self._embeddings is not None:
            return self._embeddings.features()
        logmel = self.extractor.logmel
        if logmel is None:
            return self.extractor.compute(self.audio)
        return logmel.normalise(self._frames)


def make_extractor(spec: FeatureSpec | dict[str, Any],
                   runtime: str | None = None) -> FeatureExtractor:
    """Build the extractor a manifest asks for (`runtime`: the TFLite runtime for profiles that
    run a network)."""
    if isinstance(spec, dict):
        spec = FeatureSpec.from_json(spec)
    return FeatureExtractor(spec, runtime)
