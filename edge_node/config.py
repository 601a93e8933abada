"""Node configuration: frozen dataclasses loaded from `node.yaml`, validated with clear errors.

Each section is a frozen dataclass with one docstring per field (the dataclasses live beside
the code they configure). Unknown keys and wrong types are reported with their YAML path
(e.g. ``detector.threshold: expected a number, got 'high'``) before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from edge_node.audio.factory import check_source
from edge_node.audio.settings import AudioSettings
from edge_node.detector import DetectorSettings
from edge_node.display import DisplaySettings
from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import DEFAULT_MODEL
from edge_node.mqtt.settings import MqttSettings
from edge_node.ota.settings import OtaSettings
from edge_node.setting import meta, setting
from edge_node.topics import RESERVED_IDS

DEFAULT_EXAMPLE = Path(__file__).parent / "data" / "example.wav"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


def default_node_id() -> str:
    host = socket.gethostname().split(".")[0].lower()
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in host) or "kws-node"


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Everything `edge-node run` needs; MQTT and display sections join as they are built."""

    node_id: str = dataclasses.field(default_factory=default_node_id)
    """Unique id of this node (letters, digits, - and _); defaults to the host name."""
    name: str = ""
    """Friendly name shown in Home Assistant; defaults to the node id."""
    area: str = ""
    """Home Assistant area suggested for the node's device (e.g. `Kitchen`)."""
    group: str = ""
    """Fleet group (letters, digits, - and _): the node takes group-wide model updates and
    `kws-fleet set --group` changes reach it."""
    model: Path = DEFAULT_MODEL
    """The .tflite model (its .json manifest must sit beside it)."""
    isolation_model: Path | None = DEFAULT_ISOLATION_MODEL
    """The isolation check's model, which tells a command said on its own from the same word
    inside talk (`edge_node.isolation`); null turns the check off."""
    source: str = "mic"
    """Audio source: `mic`, `wav:FILE` (paced in real time) or `stdin[:RATE:CHANNELS:FORMAT]`."""
    audio: AudioSettings = dataclasses.field(default_factory=AudioSettings)
    """Microphone settings (device, format, channel, start-up discard, DC removal, gain)."""
    detector: DetectorSettings = dataclasses.field(default_factory=DetectorSettings)
    """How detections are decided (hop, thresholds, smoothing, refractory period, gate)."""
    display: DisplaySettings = dataclasses.field(default_factory=DisplaySettings)
    """The OLED (or PNG files): backend, I2C address, dimming and blanking times."""
    log_level: str = setting("INFO", live=True)
    """DEBUG, INFO, WARNING or ERROR."""
    mqtt: MqttSettings = dataclasses.field(default_factory=MqttSettings)
    """Home Assistant over MQTT (broker, credentials, TLS, topics, state and queue dirs)."""
    ota: OtaSettings = dataclasses.field(default_factory=OtaSettings)
    """Over-the-air model updates: the fleet's public key, models dir, limits."""

    def __post_init__(self) -> None:
        if not self.node_id or not all(ch.isalnum() or ch in "-_" for ch in self.node_id):
            raise ConfigError(f"node_id {self.node_id!r} may only hold letters, digits, - and _")
        if not all(ch.isalnum() or ch in "-_" for ch in self.group):
            raise ConfigError(f"group {self.group!r} may only hold letters, digits, - and _")
        if self.node_id in RESERVED_IDS:
            raise ConfigError(f"node_id {self.node_id!r} is reserved for fleet-wide topics")
        try:
            check_source(self.source)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level {self.log_level!r} is not DEBUG/INFO/WARNING/ERROR")

    @property
    def display_name(self) -> str:
        return self.name or self.node_id

    @property
    def models_dir(self) -> Path:
        """Where OTA keeps installed models and its state."""
        return self.ota.models_dir or self.mqtt.state_dir / f"{self.node_id}-models"

    @property
    def runs_demo(self) -> bool:
        """The bundled example without a broker configured: the demo brings its own broker, so
        a newcomer sees Home Assistant's topics without any setup."""
        return not self.mqtt.enabled and self.source == f"wav:{DEFAULT_EXAMPLE}"

    @property
    def wants_broker(self) -> bool:
        """Whether the node talks MQTT at all (the MQTT and OTA code, with paho, sqlite and
        cryptography, is imported only then: memory on a Pi)."""
        return self.mqtt.enabled or self.runs_demo


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check/convert one YAML value against a type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: unexpected value {value!r}")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{where}: expected a file path, got {value!r}")
        return Path(value).expanduser()
    if origin in (Mapping, dict):
        _, value_hint = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _convert(v, value_hint, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_hint = typing.get_args(hint)[0]
        return tuple(_convert(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value))
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")


def build(cls: type, data: Any, where: str = "") -> Any:
    """Instantiate dataclass `cls` from a mapping, validating keys, types and values.

    Every problem found is reported at once (one line each), not just the first."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    errors = [f"unknown setting {prefix}{key} (known: {', '.join(sorted(fields))})"
              for key in sorted(set(map(str, data)) - set(fields))]
    kwargs = {}
    for key, value in data.items():
        if str(key) not in fields:
            continue
        try:
            kwargs[key] = _convert(value, hints[key], f"{prefix}{key}")
            meta(cls, key).check(f"{prefix}{key}", kwargs[key])
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> NodeConfig:
    """Read `node.yaml` (optional) and apply command-line overrides (dotted keys allowed)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config {path} is not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
        except RecursionError:
            raise ConfigError(f"config {path} is nested too deeply to be a node.yaml") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping of settings")
        data = loaded or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if target.get(part) is None:  # `mqtt:` left empty in node.yaml
                target[part] = {}
            target = target[part]
            if not isinstance(target, dict):
                raise ConfigError(f"{part}: expected a mapping, got {target!r}")
        target[leaf] = value
    return build(NodeConfig, data)
