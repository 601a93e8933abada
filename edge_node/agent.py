"""The agent: moves audio from the source through the detector and publishes events.

Everything that reacts to a detection (stdout, MQTT, the OLED) subscribes to the event hub;
`edge_node.node` builds the agent and those extensions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from edge_node.audio import AudioSource, open_source
from edge_node.audio.resilient import resilient_blocks
from edge_node.config import NodeConfig
from edge_node.detector import Detection, Detector, DetectorSettings
from edge_node.events import (
    AudioLevel,
    Detected,
    DetectorChanged,
    EventHub,
    ModelChanged,
    ModelInstalled,
    ModelRunning,
    SourceProblem,
    SourceRestored,
    Status,
)
from edge_node.isolation import load_isolation
from edge_node.model import Model
from edge_node.runtime import single_blas_thread

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 5.0
MODEL_PROOF_S = 2.0
"""Audio a model must process before it is reported as running (ends an OTA trial)."""


class Agent:
    """Runs the listening loop until the source ends or `stop()` is called."""

    def __init__(self, config: NodeConfig, hub: EventHub | None = None,
                 model: Model | None = None) -> None:
        self.config = config
        self.hub = hub or EventHub()
        self.model = model or Model(config.model)
        single_blas_thread()
        self.detector = Detector(self.model, config.detector,
                                 isolation=load_isolation(config.isolation_model,
                                                          self.model.runtime))
        self.listening = True
        self.detections = 0
        self._stop = threading.Event()
        self._next_model: Model | None = None
        self._model_since_s = 0.0
        self._model_proven = False
        # Audio from before a device outage must not be joined to audio after it.
        self.hub.subscribe(SourceRestored, lambda _: self._report(self.detector.skip(0)))
        self.hub.subscribe(ModelInstalled, lambda event: self.swap_model(event.model))
        log.info("model %s %s (%s, %s runtime), labels: %s", self.model.name, self.model.version,
                 self.model.manifest.extra.get("quantization", "?"), self.model.runtime,
                 ", ".join(self.model.labels))
        log.info("threshold %.3f: %s", self.detector.settings.threshold,
                 self.detector.threshold_source)

    def stop(self) -> None:
        self._stop.set()

    def set_listening(self, listening: bool) -> None:
        self.listening = listening
        log.info("listening %s", "on" if listening else "off")

    @property
    def detector_settings(self) -> DetectorSettings:
        return self.detector.settings

    @property
    def detector_requested(self) -> DetectorSettings:
        return self.detector.requested

    def update_detector(self, settings: DetectorSettings) -> None:
        self.detector.update_settings(settings)
        self.hub.publish(DetectorChanged(settings))

    def swap_model(self, model: Model) -> None:
        """Use `model` from the next audio block on (called from another thread)."""
        self._next_model = model
        self.hub.publish(ModelChanged(model))

    def open_source(self) -> AudioSource:
        hop = self.detector.hop_samples
        return open_source(self.config.source, self.config.audio, block_samples=hop,
                           realtime_wav=True)

    def run(self, source: AudioSource | Callable[[], AudioSource] | None = None,
            heartbeat: Callable[[], None] = lambda: None) -> None:
        """Listen until the source ends or `stop()`; `heartbeat` is called as the loop progresses.

        A device that can come back (the configured `mic`, or a given opener) is reopened after
        faults (see `resilient_blocks`); a given source object, a file or a pipe is not.
        """
        if isinstance(source, AudioSource):
            opener, retry = (lambda: source), False
        else:
            opener = source or self.open_source
            retry = source is not None or self.config.source.partition(":")[0] == "mic"
        next_status = time.monotonic() + STATUS_INTERVAL_S
        for block in resilient_blocks(opener, self.hub.publish, self._stop, heartbeat, retry):
            self.process(block)
            if time.monotonic() >= next_status:
                next_status += STATUS_INTERVAL_S
                self.publish_status()
        self._report(self.detector.finish())
        if not self._stop.is_set():
            self.hub.publish(SourceProblem("audio source ended", fatal=False))
        self.publish_status()

    def process(self, block: np.ndarray) -> None:
        model, self._next_model = self._next_model, None
        if model is not None:
            self.detector.use_model(model)
            self.model = model
            self._model_since_s, self._model_proven = self.detector.time_s, False
            log.info("now using model %s %s, threshold %.3f: %s", model.name, model.version,
                     self.detector.settings.threshold, self.detector.threshold_source)
        self._process(block)
        if not self._model_proven and self.detector.time_s - self._model_since_s >= MODEL_PROOF_S:
            self._model_proven = True
            self.hub.publish(ModelRunning(self.model))

    def _process(self, block: np.ndarray) -> None:
        if not self.listening:
            self._report(self.detector.skip(len(block)))
            self.hub.publish(AudioLevel(-200.0, False))
            return
        found = self.detector.push(block)
        self.hub.publish(AudioLevel(self.detector.last_level_dbfs, True))
        self._report(found)

    def _report(self, found: list[Detection]) -> None:
        for detection in found:
            self.detections += 1
            log.info("heard %s (%.2f) at %.2f s", detection.label, detection.confidence,
                     detection.time_s)
            self.hub.publish(Detected(detection, self.model.version, time.time()))

    def publish_status(self) -> None:
        d = self.detector
        self.hub.publish(Status(d.last_level_dbfs, d.last_latency_ms, d.inferences,
                                self.detections, d.time_s, self.listening))
