"""A real Mosquitto per test (own config, free loopback port) and a recording subscriber."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 (SAN), made with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.crt", "server.key",
                                                        "server.csr", "server.crt"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=kws-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj",
        "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return {"ca": ca, "cert": cert, "key": key}


@dataclass
class Broker:
    """A Mosquitto process; `restart()` keeps the port (persistence off, like a crash)."""

    folder: Path
    users: dict[str, str] = field(default_factory=dict)
    acl: str = ""
    tls: bool = False
    persistence: bool = False
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    certs: dict[str, Path] = field(default_factory=dict)
    render: Callable[[Broker], str] | None = None
    """Writes the whole config instead (e.g. from ha_config/), given the prepared broker."""

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.users:
            passwd = self.folder / "passwd"
            passwd.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password],
                               check=True, capture_output=True)
        if self.tls:
            self.certs = self.certs or make_certs(self.folder / "certs")
        common = ["user root", "log_dest file " + str(self.folder / "mosquitto.log"),
                  "log_type all"]
        if self.render is not None:
            lines = [self.render(self), *common]
        else:
            lines = [f"listener {self.port} 127.0.0.1", *common]
            if self.persistence:
                # Save queued messages after every change, as ha_config does: a crashed
                # broker must not lose what it acknowledged.
                lines += ["persistence true", f"persistence_location {self.folder}/",
                          "autosave_on_changes true", "autosave_interval 1"]
            else:
                lines.append("persistence false")
            if self.users:
                lines += [f"password_file {self.folder / 'passwd'}", "allow_anonymous false"]
            else:
                lines.append("allow_anonymous true")
            if self.acl:
                (self.folder / "acl").write_text(self.acl)
                lines.append(f"acl_file {self.folder / 'acl'}")
            if self.tls:
                lines += [f"cafile {self.certs['ca']}", f"certfile {self.certs['cert']}",
                          f"keyfile {self.certs['key']}"]
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Broker:
        conf = self.write_config()
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)
        self.proc = None

    def restart(self, down_s: float = 0.5, sig: int = signal.SIGKILL) -> None:
        self.stop(sig)
        time.sleep(down_s)
        self.start()

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def broker(tmp_path):
    """An anonymous Mosquitto on a free loopback port."""
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """Records every message on `topics` (what Home Assistant would see)."""

    def __init__(self, broker: Broker, *topics: str, username: str = "", password: str = "",
                 client_id: str = "", ca: Path | None = None, persistent: bool = False) -> None:
        self.messages: list[Received] = []
        self.cond = threading.Condition()
        self.topics = topics or ("#",)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(1, 2)
        if username:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.subscribed = threading.Event()
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "subscription not acknowledged"

    def _connected(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append(Received(msg.topic, msg.payload, bool(msg.retain)))
            self.cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self.cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], Any], timeout: float = 15.0,
                 what: str = "") -> Any:
        """Wait until predicate(messages) is truthy and return its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate(list(self.messages))
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[-20:]]
                    raise AssertionError(f"timed out waiting for {what or predicate}: {seen}")
                self.cond.wait(left)

    def last(self, topic: str, timeout: float = 15.0) -> Received:
        return self.wait_for(lambda ms: [m for m in ms if m.topic == topic][-1:], timeout,
                             topic)[0]

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
