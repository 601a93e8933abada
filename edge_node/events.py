"""A small synchronous event hub: the agent and the extensions publish, extensions subscribe.

Concerns (printing, MQTT, display, OTA, systemd) never call each other; they react to typed
events such as `Detected`, `Status` or `BrokerState`. A failing subscriber is logged and does
not stop the others or the audio loop. Subscribers run in the publisher's thread, so those of
audio-thread events (`Detected`, `AudioLevel`, `Status`) must only hand work over.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from edge_node.detector import Detection, DetectorSettings

log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True)
class Detected:
    """A command was recognised."""

    detection: Detection
    model_version: str
    wall_time: float
    """Unix time when the detector fired."""


@dataclass(frozen=True)
class Status:
    """Periodic health figures (for diagnostics sensors and the display)."""

    level_dbfs: float
    latency_ms: float
    inferences: int
    detections: int
    stream_s: float
    listening: bool


@dataclass(frozen=True)
class Stopping:
    """The node is about to stop its extensions (audio ended, SIGTERM, restart): the last
    moment to finish outgoing work, such as the final status, while the broker connection,
    which stops first, is still up."""


@dataclass(frozen=True)
class AudioLevel:
    """The level of the audio just processed (every block; for live meters)."""

    level_dbfs: float
    listening: bool


@dataclass(frozen=True)
class DetectorChanged:
    """The detector's settings changed (MQTT control, SIGHUP) or were restored at start."""

    settings: DetectorSettings


@dataclass(frozen=True)
class BrokerState:
    """The MQTT connection came up (True) or is down (False: connecting or lost)."""

    connected: bool


@dataclass(frozen=True)
class SourceProblem:
    """The audio source failed or ended."""

    message: str
    fatal: bool


@dataclass(frozen=True)
class SourceRestored:
    """The audio source works again after a `SourceProblem` (problem screens can clear)."""

    message: str


@dataclass(frozen=True)
class NodeProblem:
    """Something outside the audio path is wrong (the detection queue's disk, a duplicate
    node_id); `message` None means that problem is over. Shown on the OLED and in HA."""

    key: str
    message: str | None


@dataclass(frozen=True)
class ModelChanged:
    """The agent was handed another model (an OTA install or rollback); it takes over from the
    next audio block. Discovery (labels, version) must follow."""

    model: Any
    """The new `edge_node.model.Model`."""


@dataclass(frozen=True)
class ModelInstalled:
    """OTA installed and self-tested a model: the agent should switch to it."""

    model: Any
    """The new `edge_node.model.Model`."""


@dataclass(frozen=True)
class ModelRunning:
    """The current model has processed `MODEL_PROOF_S` of audio without failing: an OTA
    trial can be confirmed."""

    model: Any


@dataclass(frozen=True)
class UpdateProgress:
    """An OTA model update moved on: text for the screen and percent, or None when done."""

    text: str
    percent: float | None


class EventHub:
    """Type-keyed publish/subscribe, called in the publisher's thread."""

    def __init__(self) -> None:
        self._subscribers: dict[type, list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, event_type: type[E], callback: Callable[[E], None]) -> None:
        self._subscribers[event_type].append(callback)

    def publish(self, event: object) -> None:
        for callback in list(self._subscribers.get(type(event), ())):
            try:
                callback(event)
            except Exception:
                log.exception("subscriber %r failed on %s", callback, type(event).__name__)
