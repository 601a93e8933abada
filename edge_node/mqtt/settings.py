"""MQTT settings: the `mqtt:` section of node.yaml, validated by `edge_node.config.build`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edge_node.setting import check_limits, setting
from edge_node.topics import node_base


def default_state_dir() -> Path:
    """Survives restarts and is writable by the node's user (XDG state dir)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kws-edge-node"


@dataclass(frozen=True)
class TlsSettings:
    """TLS towards the broker; on when `ca_file` is set."""

    ca_file: Path | None = None
    """CA certificate that signed the broker's certificate (enables TLS)."""
    certfile: Path | None = None
    """Client certificate, when the broker requires one."""
    keyfile: Path | None = None
    """Private key of `certfile`."""

    def __post_init__(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("mqtt.tls needs both certfile and keyfile, or neither")
        if self.certfile is not None and self.ca_file is None:
            raise ValueError("mqtt.tls.certfile needs mqtt.tls.ca_file")

    @property
    def enabled(self) -> bool:
        return self.ca_file is not None


@dataclass(frozen=True)
class MqttSettings:
    """Where and how the node talks to Home Assistant's broker."""

    host: str = ""
    """Broker host name; empty disables MQTT (except the demo, which brings its own broker)."""
    port: int = setting(1883, low=1, high=65535, means="a TCP port")
    """Broker port (usually 1883, or 8883 with TLS)."""
    username: str = ""
    """User name; the example Mosquitto ACL expects the node id."""
    password: str = ""
    """Password of `username`."""
    tls: TlsSettings = field(default_factory=TlsSettings)
    """TLS certificates (ca_file, certfile, keyfile)."""
    client_id: str = ""
    """MQTT client id; defaults to `kws-<node_id>`."""
    base_topic: str = ""
    """Prefix of all of this node's topics; defaults to `kws/<node_id>` (`edge_node.topics`)."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix (also where it announces `status`)."""
    keepalive: int = setting(30, low=5, high=3600, unit="s")
    """Seconds between pings; the broker sends the last will after 1.5 x this of silence."""
    reconnect_max_s: int = setting(30, low=1, unit="s")
    """Longest wait between reconnection attempts (the wait doubles from 1 s)."""
    state_dir: Path = field(default_factory=default_state_dir)
    """Where settings changed from Home Assistant and the detection queue are kept."""
    queue_dir: Path | None = None
    """Directory of the on-disk detection queue; defaults to `state_dir`."""
    max_queued: int = setting(10000, low=1)
    """Most detections kept while the broker is unreachable (the oldest are dropped)."""

    def __post_init__(self) -> None:
        check_limits(self, "mqtt")
        for name in ("base_topic", "discovery_prefix"):
            value = getattr(self, name)
            if any(ch in value for ch in "#+") or value.startswith("/") or value.endswith("/"):
                raise ValueError(f"mqtt.{name} {value!r} must not hold # or + or end in /")
        if not self.discovery_prefix:
            raise ValueError("mqtt.discovery_prefix must not be empty")

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def topic_base(self, node_id: str) -> str:
        return self.base_topic or node_base(node_id)

    def client_id_for(self, node_id: str) -> str:
        return self.client_id or f"kws-{node_id}"

    def queue_path(self, node_id: str) -> Path:
        return (self.queue_dir or self.state_dir) / f"{node_id}-queue.sqlite3"

    def state_path(self, node_id: str) -> Path:
        return self.state_dir / f"{node_id}-state.json"
