"""The isolation check: was a detected word said on its own, or inside talk?

The product contract: a command is a word said on its own, with a short pause before and after;
the same word inside a sentence (a TV, a conversation, a reading) is talk, and firing on it is a
false activation. The classifier sees one second, which holds the word but hardly its
neighbours. This check sees the `before` and `after` of the audio around a detection (2 s in
the bundled model: 1.5 s before the moment the classifier fired, 0.5 s after it) through a
small model of its own (log-mel in, `alone` / `other` out, made by `kws-train isolation`), so a
detection is reported only once the pause after the word has been heard.

It runs only when the classifier fires (a few times an hour), never on every hop, and its model
is loaded like any other (`edge_node.model.Model`: manifest, sha256, tensor checks).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_node.audio.base import SAMPLE_RATE
from edge_node.model import Model, ModelError

if TYPE_CHECKING:
    from edge_node.detector import Detection

log = logging.getLogger(__name__)

DEFAULT_ISOLATION_MODEL = Path(__file__).parent / "models" / "isolation.tflite"
ALONE_LABEL = "alone"
"""The isolation model's label for a word said on its own (`other`: inside talk, or no word)."""
ISOLATION_LABELS = ("other", ALONE_LABEL)
"""The isolation model's outputs, in order."""


class IsolationCheck:
    """Scores the audio around a detection: the probability the word was said on its own."""

    def __init__(self, model: Model) -> None:
        if tuple(model.labels) != ISOLATION_LABELS:
            raise ModelError(f"{model.name} is not an isolation model: labels "
                             f"{list(model.labels)}, expected {list(ISOLATION_LABELS)}")
        after_ms = context_after_ms(model.manifest.extra)
        if not 0 <= after_ms * SAMPLE_RATE // 1000 < model.clip_samples:
            raise ModelError(f"{model.name}: isolation after_ms {after_ms} does not fit its "
                             f"{model.clip_samples / SAMPLE_RATE:g} s window")
        self.model = model
        self.after_samples = after_ms * SAMPLE_RATE // 1000
        """Audio the check waits for after the classifier fired: the pause after the word."""
        self._alone = ISOLATION_LABELS.index(ALONE_LABEL)

    @property
    def clip_samples(self) -> int:
        """The window the check sees, ending `after_samples` after the detection."""
        return self.model.clip_samples

    @property
    def threshold(self) -> float | None:
        """The probability its manifest recommends (`detector.threshold`)."""
        return self.model.manifest.threshold

    @property
    def name(self) -> str:
        return f"{self.model.name} {self.model.version}"

    def score(self, window: np.ndarray) -> float:
        """P(alone) for the last `clip_samples` of audio (zero-padded in front if shorter)."""
        window = np.asarray(window, dtype=np.float32)[-self.clip_samples:]
        if window.size < self.clip_samples:
            window = np.concatenate([np.zeros(self.clip_samples - window.size, np.float32),
                                     window])
        return float(self.model.predict_waveform(window)[self._alone])


class AudioRing:
    """The last `size` samples of the stream: the check's window, up to now. Written in place
    every hop (shifting 2 s of audio every hop would cost the node a large temporary array, an
    mmap and munmap, per hop); read only when the check runs, a few times an hour."""

    def __init__(self, size: int) -> None:
        self._ring = np.zeros(size, dtype=np.float32)
        self._at = 0

    def write(self, hop: np.ndarray) -> None:
        ring, at = self._ring, self._at
        hop = hop[-ring.size:]
        first = min(hop.size, ring.size - at)
        ring[at:at + first] = hop[:first]
        ring[:hop.size - first] = hop[first:]
        self._at = (at + hop.size) % ring.size

    def read(self, silence_after: int = 0) -> np.ndarray:
        """The window, oldest sample first; with `silence_after`, the window ending that many
        samples from now, the part not yet heard taken as silence."""
        audio = np.concatenate([self._ring[self._at:], self._ring[:self._at]])
        unheard = min(max(0, silence_after), audio.size)
        if unheard:
            audio = np.concatenate([audio[unheard:], np.zeros(unheard, dtype=np.float32)])
        return audio


class PauseGate:
    """Holds each detection until the pause after its word has been heard, then reports it
    only if the check finds the word said on its own. Hears every hop (one ring write); runs
    the check only when a detection is due."""

    def __init__(self, check: IsolationCheck) -> None:
        self.check = check
        self._heard = AudioRing(check.clip_samples)
        self._waiting: deque[tuple[int, Detection]] = deque()
        """(stream sample when due, detection), oldest first."""
        self.vetoed = 0
        """Detections held back as talk."""

    def hear(self, hop: np.ndarray) -> None:
        self._heard.write(hop)

    def forget_audio(self) -> None:
        """Listening resumes from silence (after a gap in the stream)."""
        self._heard = AudioRing(self.check.clip_samples)

    def score_until(self, due: int, now: int) -> float:
        """The check's score of its window ending at stream sample `due` (we are at `now`),
        the part not yet heard taken as silence."""
        return self.check.score(self._heard.read(due - now))

    def admit(self, detection: Detection | None, now: int, threshold: float,
              score_now: Callable[[], float]) -> list[Detection]:
        """Queue `detection` (if any) and return the detections due at stream sample `now`
        that pass, scored by `score_now`; with the check off (`threshold` <= 0) every waiting
        detection at once."""
        if detection is not None:
            self._waiting.append((now + self.check.after_samples, detection))
        found = []
        while self._waiting and (threshold <= 0.0 or self._waiting[0][0] <= now):
            _, waiting = self._waiting.popleft()
            if self._passes(waiting, threshold, score_now):
                found.append(waiting)
        return found

    def flush(self, now: int, threshold: float) -> list[Detection]:
        """Decide every waiting detection now, on the audio heard so far followed by silence:
        a word said just before the stream goes unheard is not lost."""
        found = []
        while self._waiting:
            due, waiting = self._waiting.popleft()
            if self._passes(waiting, threshold, partial(self.score_until, due, now)):
                found.append(waiting)
        return found

    def _passes(self, waiting: Detection, threshold: float, score: Callable[[], float]) -> bool:
        if threshold <= 0.0:
            return True
        got = score()
        if got >= threshold:
            return True
        self.vetoed += 1
        log.info("%s %.2f at %.1f s held back: inside talk (isolation %.2f < %.2f)",
                 waiting.label, waiting.confidence, waiting.time_s, got, threshold)
        return False


def context_after_ms(manifest_extra: dict[str, Any]) -> int:
    """The isolation manifest's `isolation.after_ms`: how much of its window follows the
    moment the classifier fired."""
    try:
        return int(manifest_extra["isolation"]["after_ms"])
    except (KeyError, TypeError, ValueError):
        raise ModelError("isolation model manifest lacks an integer 'isolation.after_ms'") from None


def load_isolation(path: Path | None, runtime: str | None = None) -> IsolationCheck | None:
    """The isolation check of `path`; None when `path` is None (the check is off), or when
    its model cannot be used: then the node says why and reports every detection unchecked,
    rather than stop listening."""
    if path is None:
        return None
    try:
        check = IsolationCheck(Model(path, runtime))
    except ModelError as exc:
        log.error("isolation check off: %s (set isolation_model to a model made by "
                  "`kws-train isolation`, or to null)", exc)
        return None
    log.info("isolation check %s: a detection waits %d ms for the pause after its word",
             check.name, 1000 * check.after_samples // SAMPLE_RATE)
    return check
