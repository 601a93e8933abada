"""Streaming command detector: audio blocks in, one detection per spoken command out.

Replaces the article's "record 3 s, classify the 1 s around the peak" loop with a sliding 1 s
window evaluated every hop over a ring buffer. An energy gate skips the model when the window is
silent, posteriors are averaged over recent windows, each command has its own threshold, and a
refractory period plus re-arming (the score must fall back first) make one utterance give one
detection. The article's block mode is kept as `mode="block"` for comparison.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from edge_node.audio.base import SAMPLE_RATE
from edge_node.isolation import IsolationCheck, PauseGate
from edge_node.model import Manifest, Model
from edge_node.setting import check_limits, meta, setting

log = logging.getLogger(__name__)

MODES = ("stream", "block")
DEFAULT_THRESHOLD = 0.6
"""The threshold of a model that was not calibrated (no `detector.threshold` in its manifest)."""


class DetectorConfigError(ValueError):
    """Detector settings that do not fit the model (e.g. a hop off its feature grid)."""


@dataclass(frozen=True)
class DetectorSettings:
    """How the detector decides; every field can be changed live (e.g. from Home Assistant)."""

    mode: str = setting("stream", live=True)
    """`stream` (sliding window every hop) or `block` (the article: classify each block's peak)."""
    hop_ms: int = setting(100, low=10, high=1000, unit="ms", live=True)
    """How often the sliding window is evaluated; a multiple of the feature frame step."""
    threshold: float | None = setting(None, low=0.01, high=1.0, step=0.01, live=True)
    """Smoothed probability a command needs to be reported. Unset: the threshold the model
    was calibrated for (its manifest's `detector.threshold`, chosen on people it never heard),
    else `DEFAULT_THRESHOLD`; a model installed over the air then brings its own.

    Never 0: a command re-arms only once its score falls below half its threshold, so at 0
    each command would fire once per process and then never again."""
    thresholds: Mapping[str, float] = setting(default_factory=dict, live=True)
    """Per-command overrides of `threshold`, e.g. {"stop": 0.5}."""
    smoothing_windows: int = setting(3, low=1, live=True)
    """Number of recent windows whose posteriors are averaged."""
    refractory_s: float = setting(1.5, low=0.0, high=10.0, unit="s", step=0.1, live=True)
    """After a detection, no other detection for this long (one utterance, one detection).

    A word stays in the 1 s window for 1 s plus its own length; its tail alone can look like
    another command ("stop" -> "op" -> "up"), so this covers that time."""
    gate_dbfs: float = setting(-65.0, unit="dBFS", live=True)
    """Windows whose loudest hop is quieter than this (RMS, dBFS) skip the model entirely.

    The SPH0645 gives speech at 1-2 m only about -60..-50 dBFS (-26 dBFS at 94 dB SPL), so a
    higher gate drops quiet commands; its self-noise (about -91 dBFS) and a quiet room stay
    well below, so the model still sleeps most of the time."""
    isolation_threshold: float | None = setting(None, low=0.0, high=1.0, step=0.01, live=True)
    """How sure the isolation check (`edge_node.isolation`) must be that a detected word was
    said on its own, not inside talk, for it to be reported; each detection then waits for the
    pause after the word (0.5 s with the bundled check). 0 turns the check off: every
    detection is reported at once. Unset: the isolation model's own (its manifest)."""
    block_s: float = setting(2.8, low=1.0, unit="s", live=True)
    """Block length in block mode (the article recorded 11 x 4096 samples = 2.8 s)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"detector mode must be one of {MODES}, not {self.mode!r}")
        limits = meta(self, "threshold")
        for name, value in {"threshold": self.threshold, **dict(self.thresholds)}.items():
            if value is not None:
                limits.check(f"detector threshold for {name}", float(value))
        check_limits(self, "detector")

    def threshold_for(self, label: str) -> float:
        default = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        return float(self.thresholds.get(label, default))

    def resolved(self, calibrated: float | None,
                 isolation: float | None = None) -> DetectorSettings:
        """These settings with the thresholds in force: the ones set, else the model's
        calibrated one (`calibrated`; `DEFAULT_THRESHOLD` if none) and the isolation model's
        (`isolation`; 0, no check, if none)."""
        threshold = self.threshold
        if threshold is None:
            threshold = DEFAULT_THRESHOLD if calibrated is None else calibrated
        isolation_threshold = self.isolation_threshold
        if isolation_threshold is None:
            isolation_threshold = 0.0 if isolation is None else isolation
        return replace(self, threshold=threshold, isolation_threshold=isolation_threshold)


@dataclass(frozen=True)
class Detection:
    """A recognised command."""

    label: str
    confidence: float
    time_s: float
    """Stream time (seconds of audio since the start) when the detector fired."""

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "confidence": round(self.confidence, 4),
                "time_s": round(self.time_s, 3)}


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(max(rms, 1e-10))


class Detector:
    """Gives the model audio hops, takes its scores, and decides when a command was said."""

    def __init__(self, model: Model, settings: DetectorSettings | None = None,
                 keep_posteriors: bool = False, isolation: IsolationCheck | None = None) -> None:
        self.model = model
        self.isolation = isolation
        """Lets through only words said on its own (`edge_node.isolation`); None: all."""
        self._gate = None if isolation is None else PauseGate(isolation)
        """Holds detections until the pause after their word, for the check."""
        self.requested = settings or DetectorSettings()
        """The settings as given (node.yaml, Home Assistant); `settings` are in force."""
        self.settings = self._resolve(self.requested)
        self.posteriors: list[np.ndarray] | None = [] if keep_posteriors else None
        """Every hop's posteriors (after the gate), when asked for: `replay` decides on them
        again with other settings without running the model twice."""
        self.isolation_scores: list[float] | None = (
            [] if keep_posteriors and isolation is not None else None)
        """With `posteriors`: every hop's isolation score of the window ending there, so
        `replay` can check detections without the audio (costs a check per hop)."""
        self.labels = model.labels
        self._is_command = np.array([Manifest.is_command(lab) for lab in self.labels])
        self.samples_seen = 0
        self.windows = 0
        self.inferences = 0
        self.last_level_dbfs = -200.0
        self.last_latency_ms = 0.0
        self._reset_state()

    def _resolve(self, requested: DetectorSettings) -> DetectorSettings:
        return requested.resolved(self.model.manifest.threshold,
                                  None if self.isolation is None else self.isolation.threshold)

    def _reset_state(self) -> None:
        s = self.settings
        self.hop_samples = SAMPLE_RATE * s.hop_ms // 1000
        step = self.model.frame_step
        if self.hop_samples % step:
            raise DetectorConfigError(
                f"detector hop of {s.hop_ms} ms is not a multiple of model "
                f"{self.model.name} {self.model.version}'s feature step "
                f"({1000 * step // SAMPLE_RATE} ms); set detector hop_ms to a multiple of it")
        self._stream = self.model.stream()
        self._pending = np.zeros(0, dtype=np.float32)
        hops_per_window = -(-self.model.clip_samples // self.hop_samples)
        self._levels: deque[float] = deque([-200.0] * hops_per_window, maxlen=hops_per_window)
        self._posteriors: deque[np.ndarray] = deque(maxlen=s.smoothing_windows)
        self._silent = np.zeros(len(self.labels), dtype=np.float32)
        if "_silence_" in self.labels:
            self._silent[self.labels.index("_silence_")] = 1.0
        self._last_fire_s = -1e9
        self._armed = np.ones(len(self.labels), dtype=bool)
        self._block: list[np.ndarray] = []
        self._block_len = 0
        self._thresholds = self._threshold_array()

    @property
    def _check_threshold(self) -> float:
        """The isolation check's threshold in force; 0 when it is off."""
        return self.settings.isolation_threshold or 0.0

    @property
    def vetoed(self) -> int:
        """Detections the isolation check held back as talk."""
        return 0 if self._gate is None else self._gate.vetoed

    @property
    def threshold_source(self) -> str:
        """Where the threshold in force comes from, for logs, `edge-node doctor` and HA."""
        if self.requested.threshold is not None:
            return "set in node.yaml, on the command line or from Home Assistant"
        if self.model.manifest.threshold is not None:
            return f"calibrated for {self.model.name} {self.model.version} (its manifest)"
        return "the built-in default (the model carries no calibrated threshold)"

    def _threshold_array(self) -> np.ndarray:
        return np.array([self.settings.threshold_for(lab) for lab in self.labels])

    def update_settings(self, settings: DetectorSettings) -> None:
        """Apply new settings live; the stream position is kept."""
        old = self.settings
        self.requested = settings
        self.settings = self._resolve(settings)
        self._thresholds = self._threshold_array()
        if (settings.hop_ms, settings.smoothing_windows, settings.mode) != (
            old.hop_ms, old.smoothing_windows, old.mode
        ):
            self._reset_state()

    def use_model(self, model: Model) -> None:
        """Switch to another model between hops (an OTA update), keeping stream time, the
        refractory period and the last window of audio, so a word spoken across the switch is
        still heard by the new model."""
        recent = self._stream.window_audio()[-min(self._stream.samples_seen,
                                                  self.model.clip_samples):].copy()
        pending, levels, last_fire = self._pending, list(self._levels), self._last_fire_s
        same_labels = tuple(model.labels) == tuple(self.labels)
        posteriors, armed = list(self._posteriors), self._armed
        self.model = model
        self.settings = self._resolve(self.requested)
        self.labels = model.labels
        self._is_command = np.array([Manifest.is_command(lab) for lab in self.labels])
        self._reset_state()
        if recent.size:
            self._stream.push(recent)
        self._pending = pending
        self._levels.extend(levels)
        self._last_fire_s = last_fire
        if same_labels:
            # Smoothing and re-arming carry over (else a word could fire twice or late).
            self._posteriors.extend(posteriors)
            self._armed = armed

    def skip(self, samples: int) -> list[Detection]:
        """Let stream time pass unheard (listening is off, the device restarted); listening
        resumes from silence. Returns the detections that were waiting for the isolation
        check, decided as if silence had followed their word (`flush`)."""
        found = self.flush()
        self.samples_seen += samples
        self._reset_state()
        if self._gate is not None:
            self._gate.forget_audio()
        return found

    def flush(self) -> list[Detection]:
        """Decide now the detections waiting for the pause after their word, on the audio
        heard so far followed by silence: a word said just before the stream goes unheard is
        not lost (nor one said in a pause, for the check sees the pause as silence)."""
        if self._gate is None:
            return []
        return self._gate.flush(self.samples_seen, self._check_threshold)

    def finish(self) -> list[Detection]:
        """The stream ended: the detections still due, after the isolation check's wait of
        silence. The silence goes through `push` whether or not a detection waits, so a sweep's
        recorded posteriors and a live run end alike."""
        if self.isolation is None or self.settings.mode == "block":
            return self.flush()
        hops = -(-self.isolation.after_samples // self.hop_samples)
        tail = max(0, hops * self.hop_samples - self._pending.size)
        return [*self.push(np.zeros(tail, dtype=np.float32)), *self.flush()]

    @property
    def time_s(self) -> float:
        return self.samples_seen / SAMPLE_RATE

    def push(self, block: np.ndarray) -> list[Detection]:
        """Consume audio (any length, 16 kHz mono float32); return the detections it completes."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self.settings.mode == "block":
            return self._push_block_mode(block)
        data = np.concatenate([self._pending, block]) if self._pending.size else block
        found: list[Detection] = []
        start = 0
        while data.size - start >= self.hop_samples:
            hop = data[start : start + self.hop_samples]
            start += self.hop_samples
            found.extend(self._step(hop))
        self._pending = data[start:].copy()
        return found

    def _step(self, hop: np.ndarray) -> list[Detection]:
        self.samples_seen += hop.size
        self.windows += 1
        self._stream.push(hop)
        if self._gate is not None:
            self._gate.hear(hop)
        level = rms_dbfs(hop)
        self.last_level_dbfs = level
        self._levels.append(level)
        if not self._stream.heard_a_window or max(self._levels) < self.settings.gate_dbfs:
            probs = self._silent
        else:
            started = time.perf_counter()
            probs = self._stream.scores()
            self.last_latency_ms = (time.perf_counter() - started) * 1000.0
            self.inferences += 1
        if self.posteriors is not None:
            self.posteriors.append(probs)
        if self.isolation_scores is not None and self._gate is not None:
            self.isolation_scores.append(self._gate.score_until(self.samples_seen,
                                                                self.samples_seen))
        return self._checked(self._smooth_and_decide(probs), self._isolation_score_now)

    def _isolation_score_now(self) -> float:
        assert self._gate is not None
        if self.isolation_scores:
            return self.isolation_scores[-1]
        return self._gate.score_until(self.samples_seen, self.samples_seen)

    def _checked(self, detection: Detection | None,
                 isolation_score: Callable[[], float]) -> list[Detection]:
        """The detections due now: with the isolation check on, each waits for the pause after
        its word and is reported only if the check finds the word said on its own."""
        if self._gate is None:
            return [detection] if detection else []
        return self._gate.admit(detection, self.samples_seen,
                                self._check_threshold, isolation_score)

    def _smooth_and_decide(self, probs: np.ndarray) -> Detection | None:
        self._posteriors.append(probs)
        return self._decide(np.mean(self._posteriors, axis=0))

    def replay(self, posteriors: Sequence[np.ndarray], settings: DetectorSettings,
               isolation_scores: Sequence[float] | None = None) -> list[Detection]:
        """The detections `settings` would have given on a stream whose hops had these
        posteriors (`self.posteriors` of a run with the same hop and gate) and isolation scores
        (`self.isolation_scores`; needed when the isolation check is on): a threshold sweep
        costs one pass of the model instead of one per threshold. Leaves the stream state as
        new, and the live isolation gate (its waiting detections, its veto count) as it was."""
        if (settings.mode, settings.hop_ms, settings.gate_dbfs) != (
                self.settings.mode, self.settings.hop_ms, self.settings.gate_dbfs):
            raise DetectorConfigError("replay needs the mode, hop and gate the posteriors "
                                      "were recorded with")
        kept = self.settings
        self.settings, self.samples_seen = self._resolve(settings), 0
        if self.isolation is not None and self._check_threshold > 0.0 and (
                isolation_scores is None or len(isolation_scores) != len(posteriors)):
            raise DetectorConfigError("replay with the isolation check needs an isolation "
                                      "score for every hop")
        self._reset_state()
        live_gate = self._gate
        self._gate = None if self.isolation is None else PauseGate(self.isolation)
        scores = list(isolation_scores) if isolation_scores is not None else []
        found = []
        for hop, probs in enumerate(posteriors):
            self.samples_seen += self.hop_samples
            detection = self._smooth_and_decide(np.asarray(probs, dtype=np.float32))
            found.extend(self._checked(detection, partial(scores.__getitem__, hop)))
        self.settings, self.samples_seen, self._gate = kept, 0, live_gate
        self._reset_state()
        return found

    def _decide(self, smoothed: np.ndarray) -> Detection | None:
        thresholds = self._thresholds
        above = smoothed >= thresholds
        # Re-arm a label once its score has fallen well below its threshold.
        self._armed |= smoothed < 0.5 * thresholds
        best = int(np.argmax(smoothed))
        if not (self._is_command[best] and above[best] and self._armed[best]):
            return None
        if self.time_s - self._last_fire_s < self.settings.refractory_s:
            return None
        self._last_fire_s = self.time_s
        self._armed[best] = False
        return Detection(self.labels[best], float(smoothed[best]), self.time_s)

    def _push_block_mode(self, block: np.ndarray) -> list[Detection]:
        """The article's loop: gather a block, classify the 1 s around its loudest sample."""
        self._block.append(block)
        self._block_len += block.size
        self.samples_seen += block.size
        need = int(self.settings.block_s * SAMPLE_RATE)
        if self._block_len < need:
            return []
        audio = np.concatenate(self._block)
        self._block, self._block_len = [audio[need:]], audio.size - need
        audio = audio[:need]
        self.windows += 1
        self.last_level_dbfs = rms_dbfs(audio)
        clip_len = self.model.clip_samples
        peak = int(np.argmax(np.abs(audio)))
        start = max(0, min(peak - clip_len // 2, audio.size - clip_len))
        clip = audio[start : start + clip_len]
        if rms_dbfs(clip) < self.settings.gate_dbfs:
            return []
        started = time.perf_counter()
        probs = self.model.predict_waveform(clip)
        self.last_latency_ms = (time.perf_counter() - started) * 1000.0
        self.inferences += 1
        best = int(np.argmax(probs))
        label = self.labels[best]
        if not self._is_command[best] or probs[best] < self.settings.threshold_for(label):
            return []
        end_s = self.time_s - self._block_len / SAMPLE_RATE
        return [Detection(label, float(probs[best]), end_s)]
