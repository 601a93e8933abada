"""One paho-mqtt 2.x connection with availability (birth, last will, clean goodbye).

paho's own network thread reconnects with exponential backoff; after every (re)connect the
node re-announces `online` (retained) and the registered listeners re-subscribe and re-publish,
because a broker restart without persistence forgets both.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_node import topics
from edge_node.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"
MessageHandler = Callable[[str, bytes], None]

SHORT_SESSION_S = 10.0
"""A connection the broker drops sooner than this after accepting it counts as short."""
TAKEOVERS = 3
"""Short connections in a row taken as another client with our client id taking turns
with us (the broker drops the older of two); then this one switches to a client id of its
own instead of flapping."""


class MqttConnection:
    """Connects in the background and dispatches messages to per-topic handlers."""

    def __init__(self, settings: MqttSettings, node_id: str, *, client_id: str | None = None,
                 availability: bool = True, instance: str = "") -> None:
        self.settings = settings
        self.availability = availability
        self.availability_topic = f"{settings.topic_base(node_id)}/{topics.AVAILABILITY}"
        self.connected = threading.Event()
        self.client_id = client_id or settings.client_id_for(node_id)
        self.instance = instance
        """Distinguishes this process from another using the same node_id."""
        self.takeover_suspected = False
        self._closing = False
        self._connected_at = 0.0
        self._short_sessions = 0
        self._live_only: set[str] = set()
        self._on_connect: list[Callable[[], None]] = []
        self._on_publish: list[Callable[[int], None]] = []
        self._on_disconnect: list[Callable[[], None]] = []
        self._handlers: dict[str, MessageHandler] = {}
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=self.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        tls = settings.tls
        if tls.enabled:
            client.tls_set(ca_certs=str(tls.ca_file),
                           certfile=str(tls.certfile) if tls.certfile else None,
                           keyfile=str(tls.keyfile) if tls.keyfile else None,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if availability:
            client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(1, settings.reconnect_max_s)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        client.on_message = self._message
        client.on_socket_open = self._socket_opened
        self.client = client

    def add_connect_listener(self, callback: Callable[[], None]) -> None:
        """Called in paho's thread after each successful (re)connect."""
        self._on_connect.append(callback)

    def add_disconnect_listener(self, callback: Callable[[], None]) -> None:
        """Called in paho's thread when the connection is lost or closed."""
        self._on_disconnect.append(callback)

    def add_publish_listener(self, callback: Callable[[int], None]) -> None:
        """Called with the message id when the broker acknowledged a QoS 1 publish."""
        self._on_publish.append(callback)

    def handle(self, topic: str, handler: MessageHandler, retained: bool = True) -> None:
        """Subscribe to `topic` (a filter; `+`/`#` allowed), now and after every reconnect,
        and route its messages; `retained=False` drops the retained copy a subscription
        brings (an old command must not be acted on again)."""
        self._handlers[topic] = handler
        if not retained:
            self._live_only.add(topic)
        if self.connected.is_set():
            self.client.subscribe(topic, qos=1)

    def unhandle(self, topic: str) -> None:
        """Stop a `handle` subscription (e.g. the chunks of a finished transfer)."""
        if self._handlers.pop(topic, None) is not None and self.connected.is_set():
            self.client.unsubscribe(topic)

    def start(self) -> None:
        s = self.settings
        log.info("MQTT: connecting to %s:%d%s as %s", s.host, s.port,
                 " (TLS)" if s.tls.enabled else "", s.username or "anonymous")
        self.client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self.client.loop_start()

    @property
    def closing(self) -> bool:
        return self._closing

    def publish(self, topic: str, payload: str | bytes, qos: int = 0,
                retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self) -> None:
        """The connection as a node extension: stopping is closing."""
        self.close()

    def close(self, timeout: float = 3.0) -> None:
        """Say `offline` (retained) before a clean disconnect, which suppresses the will."""
        self._closing = True
        if self.availability and self.connected.is_set():
            info = self.client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT: could not say offline: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()

    @staticmethod
    def _socket_opened(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        """A detection is four small publishes in a row; with Nagle's algorithm (paho leaves
        it on) the last three waited for the broker's delayed ACK, ~40 ms more to HA."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError) as exc:
            log.debug("MQTT: cannot set TCP_NODELAY: %s", exc)

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                   properties: Any) -> None:
        if reason.is_failure:
            log.error("MQTT: broker refused the connection: %s", reason)
            return
        log.info("MQTT: connected")
        self._connected_at = time.monotonic()
        self.connected.set()
        if self.availability:
            client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
        for topic in list(self._handlers):
            client.subscribe(topic, qos=1)
        for callback in list(self._on_connect):
            try:
                callback()
            except Exception:
                log.exception("MQTT: connect listener %r failed", callback)

    def _disconnected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                      properties: Any) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("MQTT: disconnected (%s); reconnecting", reason)
            self._count_short_session(client)
        self.connected.clear()
        for callback in list(self._on_disconnect):
            callback()

    def _count_short_session(self, client: mqtt.Client) -> None:
        if time.monotonic() - self._connected_at >= SHORT_SESSION_S:
            self._short_sessions = 0
            return
        self._short_sessions += 1
        if self._short_sessions < TAKEOVERS or not self.instance or self.takeover_suspected:
            return
        self.takeover_suspected = True
        self.client_id = f"{self.client_id}-{self.instance}"
        log.error("MQTT: the broker dropped %d connections in a row soon after accepting them: "
                  "another client probably uses this client id (a second node with the same "
                  "node_id?); continuing as client id %s", self._short_sessions, self.client_id)
        # paho has no setter; its reconnect uses this attribute.
        client._client_id = self.client_id.encode()

    def _published(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                   properties: Any) -> None:
        for callback in list(self._on_publish):
            callback(mid)

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        handler = self._handlers.get(message.topic)
        if handler is None:
            handler = next((h for f, h in list(self._handlers.items())
                            if ("+" in f or "#" in f) and mqtt.topic_matches_sub(f, message.topic)),
                           None)
        if handler is None:
            return
        if message.retain and any(mqtt.topic_matches_sub(f, message.topic)
                                  for f in self._live_only):
            level = logging.INFO if message.topic.endswith("/set") else logging.DEBUG
            log.log(level, "MQTT: ignored the retained message on %s", message.topic)
            return
        try:
            # paho types payloads as bytes | bytearray; received ones are bytes (no copy).
            handler(message.topic, bytes(message.payload))
        except Exception:
            log.exception("MQTT: handler for %s failed", message.topic)
