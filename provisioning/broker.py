"""How `kws-fleet` reaches the broker: plain MQTT 3.1.1 (any broker or cluster speaks it), the
fleet owner's account, optional TLS."""

from __future__ import annotations

import argparse
import os
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge_node.topics import OWNER_USER


class BrokerError(RuntimeError):
    """The broker could not be reached or refused us."""


@dataclass(frozen=True)
class BrokerOptions:
    """Connection settings of the fleet owner's tools."""

    host: str = "localhost"
    port: int = 1883
    username: str = OWNER_USER
    password: str = ""
    ca_file: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None


def add_broker_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("broker")
    g.add_argument("--mqtt-host", default=os.environ.get("KWS_MQTT_HOST", "localhost"))
    g.add_argument("--mqtt-port", type=int, help="default 1883, or 8883 with --ca-file")
    g.add_argument("--username", default=OWNER_USER)
    g.add_argument("--password", default=os.environ.get("KWS_FLEET_PASSWORD", ""),
                   help="default $KWS_FLEET_PASSWORD")
    g.add_argument("--password-file", type=Path,
                   help="a file holding the password, or render's secrets/passwords.yaml")
    g.add_argument("--ca-file", type=Path, help="CA of the broker's certificate (enables TLS)")
    g.add_argument("--certfile", type=Path, help="client certificate, if the broker wants one")
    g.add_argument("--keyfile", type=Path)


def read_password(path: Path, username: str) -> str:
    """The file's text, or the user's entry when it is a YAML mapping (passwords.yaml)."""
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        if not isinstance(data.get(username), str):
            raise BrokerError(f"{path} has no password for {username}")
        return data[username]
    return text.strip()


def broker_options(args: argparse.Namespace) -> BrokerOptions:
    password = args.password
    if args.password_file is not None:
        password = read_password(args.password_file, args.username)
    port = args.mqtt_port or (8883 if args.ca_file else 1883)
    return BrokerOptions(args.mqtt_host, port, args.username, password, args.ca_file,
                         args.certfile, args.keyfile)


def connect(options: BrokerOptions, purpose: str, timeout: float = 10.0) -> mqtt.Client:
    """A connected client with its network loop running; BrokerError if refused."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=f"kws-fleet-{purpose}-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv311, clean_session=True)
    if options.username:
        client.username_pw_set(options.username, options.password or None)
    if options.ca_file is not None:
        client.tls_set(ca_certs=str(options.ca_file),
                       certfile=str(options.certfile) if options.certfile else None,
                       keyfile=str(options.keyfile) if options.keyfile else None,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    done = threading.Event()
    outcome: list[str] = []

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                   properties: Any) -> None:
        outcome.append("" if not reason.is_failure else str(reason))
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(options.host, options.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"cannot reach {options.host}:{options.port}: {exc}") from exc
    client.loop_start()
    if not done.wait(timeout) or outcome[0]:
        client.loop_stop()
        reason = outcome[0] if outcome else "no answer"
        raise BrokerError(f"{options.host}:{options.port} refused {options.username}: {reason}")
    return client
