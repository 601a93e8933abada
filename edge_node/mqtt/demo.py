"""The demo's broker and monitor: `edge-node run --source example` shows, on stderr, every
message Home Assistant would receive, without any MQTT setup.

A local Mosquitto on 127.0.0.1:1883 is used when one answers; otherwise an amqtt broker runs
in-process on a free loopback port (amqtt is optional: `pip install amqtt`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

if TYPE_CHECKING:
    from edge_node.node import Extension

log = logging.getLogger("edge_node.mqtt.demo")

LOCAL = ("127.0.0.1", 1883)


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """amqtt in its own event-loop thread, loopback only, anonymous."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="demo-broker",
                                        daemon=True)

    def start(self) -> None:
        from amqtt.broker import Broker

        config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                              {"allow_anonymous": True}}}

        async def start() -> Any:
            broker = Broker(config)
            await broker.start()
            return broker

        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._thread.start()
        self._broker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def demo_broker() -> tuple[tuple[str, int], list[Extension]] | None:
    """The demo's broker address and its extensions (the embedded broker unless a local
    Mosquitto answers, then the monitor); None when there is no broker to be had."""
    if answers(*LOCAL):
        log.info("demo: using the MQTT broker on %s:%d", *LOCAL)
        return LOCAL, [Monitor(*LOCAL)]
    if importlib.util.find_spec("amqtt") is None:
        log.warning("demo without MQTT: no broker on 127.0.0.1:1883 and amqtt is not "
                    "installed (pip install 'kws-edge-node[demo]')")
        return None
    broker = EmbeddedBroker()
    log.info("demo: embedded MQTT broker on 127.0.0.1:%d", broker.port)
    return ("127.0.0.1", broker.port), [broker, Monitor("127.0.0.1", broker.port)]


class Monitor:
    """Subscribes to `#` and logs every message, as Home Assistant would receive it."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kws-demo-monitor")
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.on_message = self._message

    def start(self) -> None:
        self.client.connect(*self.address)
        self.client.loop_start()

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        text = message.payload.decode("utf-8", "replace")
        log.info("HA <- %s%s %s", message.topic, " (retained)" if message.retain else "",
                 text if len(text) <= 300 else text[:300] + "...")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
