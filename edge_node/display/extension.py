"""The display extension: follows hub events into a `ScreenState` and ships it off-thread.

Event handlers run in the audio thread, so they only swap an immutable state under a lock;
a separate thread renders at most `max_fps` times a second, sends only changed pixels, and
dims then blanks the panel when nothing happened for a while (OLED burn-in).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from edge_node.display.backends import Backend
from edge_node.display.render import ScreenState, render
from edge_node.display.settings import DisplaySettings
from edge_node.events import (
    AudioLevel,
    BrokerState,
    Detected,
    EventHub,
    ModelChanged,
    NodeProblem,
    SourceProblem,
    SourceRestored,
    Status,
    UpdateProgress,
)

log = logging.getLogger(__name__)

def _activity(old: ScreenState, new: ScreenState) -> bool:
    """Any change but the level meter counts as activity (a live meter alone never wakes)."""
    return replace(old, level_dbfs=None) != replace(new, level_dbfs=None)


class Display:
    """Screen state from events and plain calls; `refresh()` renders and ships it."""

    def __init__(self, backend: Backend | None, settings: DisplaySettings | None = None,
                 model_version: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.settings = settings or DisplaySettings()
        self.clock = clock
        self.state = ScreenState(model_version=model_version)
        self.mode = "on"
        self._lock = threading.Lock()
        self._last_activity = clock()
        self._shown: bytes | None = None
        self._level: AudioLevel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, hub: EventHub) -> Display:
        hub.subscribe(Detected, self.on_detected)
        hub.subscribe(Status, self.on_status)
        hub.subscribe(SourceProblem, self.on_source_problem)
        hub.subscribe(SourceRestored, lambda _: self.clear_alert())
        hub.subscribe(UpdateProgress, self.on_update_progress)
        hub.subscribe(NodeProblem, self.on_node_problem)
        hub.subscribe(ModelChanged, lambda e: self.update(model_version=e.model.version))
        hub.subscribe(BrokerState, lambda e: self.set_connected(e.connected))
        hub.subscribe(AudioLevel, self.on_level)
        return self

    def on_level(self, event: AudioLevel) -> None:
        """Every block, on the audio thread: only kept; the render thread picks it up."""
        self._level = event

    def on_update_progress(self, event: UpdateProgress) -> None:
        if event.percent is None:
            self.clear_progress()
        else:
            self.show_progress(event.text, event.percent)

    def update(self, **changes: Any) -> None:
        """Change fields of the screen state (thread-safe, cheap: no drawing here)."""
        with self._lock:
            new = replace(self.state, **changes)
            if _activity(self.state, new):
                self._last_activity = self.clock()
            self.state = new

    def on_detected(self, event: Detected) -> None:
        self.update(command=event.detection.label, confidence=event.detection.confidence,
                    model_version=event.model_version)

    def on_status(self, event: Status) -> None:
        self.update(listening=event.listening, level_dbfs=event.level_dbfs)

    def on_source_problem(self, event: SourceProblem) -> None:
        """Microphone errors get the "No microphone" title; other sources a generic one."""
        title = "No microphone" if "microphone" in event.message.lower() else "Audio problem"
        self.update(alert=(title, event.message))

    def on_node_problem(self, event: NodeProblem) -> None:
        if event.message is None:
            self.clear_alert()
        else:
            self.show_alert("Node problem", event.message)

    def set_connected(self, connected: bool | None) -> None:
        """MQTT broker state: True, False (shows "no broker"), None (MQTT not configured)."""
        self.update(connected=connected)

    def set_listening(self, listening: bool) -> None:
        self.update(listening=listening)

    def show_alert(self, title: str, detail: str = "") -> None:
        self.update(alert=(title, detail))

    def clear_alert(self) -> None:
        self.update(alert=None)

    def show_progress(self, text: str, percent: float) -> None:
        """Progress of a long task (OTA download/install) over everything else."""
        self.update(progress=(text, max(0.0, min(100.0, float(percent)))))

    def clear_progress(self) -> None:
        self.update(progress=None)

    def _mode_for(self, idle_s: float) -> str:
        if idle_s >= self.settings.blank_after_s:
            return "off"
        return "dim" if idle_s >= self.settings.dim_after_s else "on"

    def refresh(self) -> bool:
        """Bring the panel up to date; True if anything was sent to the backend."""
        if self.backend is None:
            return False
        level = self._level
        if level is not None:
            self.update(level_dbfs=level.level_dbfs, listening=level.listening)
        with self._lock:
            state, idle = self.state, self.clock() - self._last_activity
        mode = self._mode_for(idle)
        try:
            return self._ship(state, mode)
        except Exception as exc:
            log.warning("display stopped working (%s); running without it", exc)
            self.backend = None
            return False

    def _ship(self, state: ScreenState, mode: str) -> bool:
        assert self.backend is not None
        sent = False
        if mode != self.mode:
            self.backend.set_mode(mode)
            self.mode, sent = mode, True
            if mode == "off":
                self._shown = None
        if mode == "off":
            return sent
        image = render(state)
        if self.settings.rotate_180:
            image = image.rotate(180)
        pixels = image.tobytes()
        if pixels != self._shown:
            self.backend.show(image)
            self._shown, sent = pixels, True
        return sent

    def _loop(self) -> None:
        period = 1.0 / self.settings.max_fps
        while True:
            self.refresh()
            if self._stop.wait(period):
                return

    def start(self) -> None:
        """Render in a daemon thread so the audio loop never waits for I2C."""
        self._thread = threading.Thread(target=self._loop, name="display", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception as exc:
                log.debug("closing the display failed: %s", exc)
