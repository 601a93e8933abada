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
  50 ms by default, every 100 ms in the bundled ensemble; `edge_node.speech_embedding`),
  pre-trained on real speech.
- ``concat``: several profiles over the same window, each flattened and scaled, joined into one
  vector: one model input (so manifests, OTA and the runtime stay single-input) for a model
  whose members each read their own part (`ensemble_spec`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_node.logmel import LOG_FLOOR, SAMPLE_RATE, LogMel, LogMelParams
from edge_node.speech_embedding import (
    EMBEDDING_SIZE,
    EmbeddingParams,
    EmbeddingStream,
    EmbeddingUnavailableError,
    SpeechEmbedding,
)

CLIP_SAMPLES = SAMPLE_RATE

STFT_PROFILE = "stft129x124"
LOGMEL_PROFILE = "logmel"
EMBEDDING_PROFILE = "speech-embedding"
CONCAT_PROFILE = "concat"
PROFILES = (STFT_PROFILE, LOGMEL_PROFILE, EMBEDDING_PROFILE, CONCAT_PROFILE)
EMBEDDING_SCALE = 0.1
"""Scale of embeddings (std ~16) inside a concat vector, to the range of normalised log-mel
(std 1): an int8 model quantises its one input tensor with one scale."""


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


def ensemble_spec(normalisation: str = "mvn") -> FeatureSpec:
    """Log-mel (for a TC-ResNet) and speech embeddings (for a dense head) of one window.

    Embeddings every 100 ms, not 50: inside the ensemble they score the same and cost
    0.6x the CPU on the node (BENCHMARKS.md, kws-default 2.1.0).
    """
    return FeatureSpec(CONCAT_PROFILE, {"parts": [
        {**logmel_spec(normalisation=normalisation).to_json(), "scale": 1.0},
        {**embedding_spec(step_ms=100).to_json(), "scale": EMBEDDING_SCALE},
    ]})


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
            except (TypeError, ValueError) as exc:
                raise FeatureConfigError(f"bad log-mel parameters: {exc}") from exc
            self.logmel = LogMel(params)
            self.shape = self.logmel.shape
            self.clip_samples = params.clip_samples
            self.frame_step = params.hop_samples
        elif spec.profile == EMBEDDING_PROFILE:
            try:
                self.embedding_params = EmbeddingParams(**spec.params)
            except (TypeError, ValueError) as exc:
                raise FeatureConfigError(f"bad speech-embedding parameters: {exc}") from exc
            try:
                self.embedding = SpeechEmbedding(runtime)
            except EmbeddingUnavailableError as exc:
                raise FeatureConfigError(str(exc)) from exc
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
        return self.logmel.compute(centre_clip(waveform, self.clip_samples))

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
