"""Settings Home Assistant can change: validate, apply live, persist, publish the result.

Each control listens on `<base>/<key>/set`. A valid payload is applied through a plain
callback into the agent, saved to a JSON state file (so it survives a restart) and echoed,
retained, on `<base>/<key>`. An invalid payload changes nothing: it is logged and answered on
`<base>/error`, because HA shows nothing when a command silently fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_node import topics
from edge_node.detector import DetectorSettings
from edge_node.mqtt.client import MqttConnection
from edge_node.setting import meta

if TYPE_CHECKING:
    from edge_node.node import AgentControl

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64
NUMBER_CONTROLS = {"threshold": "threshold", "refractory": "refractory_s",
                   "isolation": "isolation_threshold"}
"""Home Assistant number controls: control key -> the `DetectorSettings` field they set."""


class StateStore:
    """A small JSON file, rewritten atomically so a power cut leaves the old or new copy."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            data = json.loads(path.read_text())
            self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        except FileNotFoundError:
            self.data = {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable state file %s: %s", path, exc)
            self.data = {}

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self.data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)


def parse_switch(text: str) -> bool:
    if text.upper() not in ("ON", "OFF"):
        raise ValueError(f"expected ON or OFF, got {text!r}")
    return text.upper() == "ON"


def parse_press(text: str) -> bool:
    if text != "PRESS":
        raise ValueError(f"expected PRESS, got {text!r}")
    return True


@dataclass(frozen=True)
class Control:
    """One setting: how to parse it, apply it and read it back (None: a button)."""

    key: str
    parse: Callable[[str], Any]
    apply: Callable[[Any], None]
    read: Callable[[], Any] | None = None

    def render(self, value: Any) -> str:
        if isinstance(value, bool):
            return "ON" if value else "OFF"
        return f"{value:g}" if isinstance(value, float) else str(value)


def agent_controls(agent: AgentControl, restart: Callable[[], None]) -> list[Control]:
    """The node's controls, as plain callbacks into the agent."""

    def detector_number(key: str, name: str) -> Control:
        """A detector setting, parsed with the limits its field declares."""
        def apply(value: float) -> None:
            change: dict[str, Any] = {name: value}  # the field is named at run time
            agent.update_detector(dataclasses.replace(agent.detector_requested, **change))
        return Control(key, meta(DetectorSettings, name).parse, apply,
                       lambda: getattr(agent.detector_settings, name))

    return [
        *(detector_number(key, name) for key, name in NUMBER_CONTROLS.items()),
        Control("listening", parse_switch, agent.set_listening, lambda: agent.listening),
        Control("restart", parse_press, lambda _: restart()),
    ]


class Controls:
    """Routes `<base>/<key>/set` messages to controls; owns the persisted values."""

    def __init__(self, conn: MqttConnection, base: str, store: StateStore,
                 controls: list[Control]) -> None:
        self.conn = conn
        self.base = base
        self.store = store
        self.controls = {c.key: c for c in controls}
        self._published: dict[str, str] = {}

    def restore(self) -> None:
        """Re-apply values saved by an earlier run (before the agent starts listening)."""
        saved = self.store.data.get("controls", {})
        for key, text in saved.items() if isinstance(saved, dict) else ():
            control = self.controls.get(key)
            if control is None or control.read is None:
                continue
            try:
                control.apply(control.parse(str(text)))
                log.info("restored %s = %s", key, text)
            except ValueError as exc:
                log.warning("ignoring saved %s: %s", key, exc)

    def subscribe(self) -> None:
        """Buttons take live presses only: a retained PRESS would act on every reconnect."""
        for key, control in self.controls.items():
            self.conn.handle(topics.set_topic(self.base, key), self.on_message,
                             retained=control.read is not None)

    def publish_states(self) -> None:
        for control in self.controls.values():
            if control.read is not None:
                self._publish(control.key, control.render(control.read()))

    def sync(self) -> None:
        """Publish and save values changed by something else (a SIGHUP reload of node.yaml),
        so HA shows the truth and the latest change wins after a restart."""
        for control in self.controls.values():
            if control.read is None:
                continue
            current = control.render(control.read())
            if self._published.get(control.key, current) != current:
                log.info("MQTT: %s changed outside MQTT to %s", control.key, current)
                self._save(control.key, current)
                self._publish(control.key, current)

    def _publish(self, key: str, value: str) -> None:
        self._published[key] = value
        self.conn.publish(f"{self.base}/{key}", value, qos=1, retain=True)

    def _save(self, key: str, value: str) -> None:
        saved = dict(self.store.data.get("controls", {}))
        saved[key] = value
        self.store.set("controls", saved)

    def on_message(self, topic: str, payload: bytes) -> None:
        key = topic[len(self.base) + 1:].removesuffix("/set")
        control = self.controls[key]
        try:
            if len(payload) > MAX_PAYLOAD:
                raise ValueError(f"payload of {len(payload)} bytes is too long")
            try:
                text = payload.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ValueError("payload is not UTF-8 text") from None
            value = control.parse(text)
            control.apply(value)
        except ValueError as exc:
            self.reject(topic, payload, str(exc))
            return
        log.info("MQTT: %s set to %s", key, text)
        if control.read is not None:
            current = control.render(control.read())
            self._save(key, current)
            self._publish(key, current)

    def reject(self, topic: str, payload: bytes, error: str) -> None:
        shown = payload[:MAX_PAYLOAD].decode("utf-8", "replace")
        log.warning("MQTT: rejected %r on %s: %s", shown, topic, error)
        self.conn.publish(f"{self.base}/{topics.ERROR}",
                          json.dumps({"topic": topic, "payload": shown, "error": error}), qos=1)
