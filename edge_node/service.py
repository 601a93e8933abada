"""Running under systemd: the notify protocol, the watchdog, SIGTERM and SIGHUP.

The notify protocol is a few datagrams on a Unix socket, so it is implemented here rather than
pulled in as a dependency (`sdnotify` hides send errors). READY=1 is sent once the model is
loaded and the listening loop runs; WATCHDOG=1 is sent from that loop's heartbeat, so a stuck
loop stops pinging and systemd restarts the node. SIGHUP re-reads node.yaml and applies the
detector settings live; an invalid file is refused and the running config kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_node.config import NodeConfig
from edge_node.events import SourceProblem, SourceRestored, Status
from edge_node.setting import is_live

if TYPE_CHECKING:
    from edge_node.node import NodeContext

log = logging.getLogger(__name__)

PING_EVERY = 0.25
"""Ping when this fraction of WATCHDOG_USEC has passed since the last ping. Half (systemd's
advice) is the target gap; a quarter as the trigger keeps a loop that ticks exactly every half
interval from slipping to whole-interval gaps through jitter."""


class Notifier:
    """sd_notify(3) without libsystemd: a no-op when NOTIFY_SOCKET is not set."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self.address else None

    def notify(self, *lines: str) -> bool:
        """Send `KEY=value` lines in one datagram; False (and a debug log) if it failed.

        No lock: one sendto is atomic, and this is also called from signal handlers, where a
        lock held by the interrupted code would deadlock.
        """
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self.address, exc)
            return False
        return True


def config_changes(old: NodeConfig, new: NodeConfig) -> dict[str, tuple[object, object]]:
    """Changed settings as {dotted key: (old, new)}, one level into each section."""
    changes: dict[str, tuple[object, object]] = {}
    for field in dataclasses.fields(old):
        a, b = getattr(old, field.name), getattr(new, field.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            for sub in dataclasses.fields(a):
                if getattr(a, sub.name) != getattr(b, sub.name):
                    changes[f"{field.name}.{sub.name}"] = (getattr(a, sub.name),
                                                           getattr(b, sub.name))
        else:
            changes[field.name] = (a, b)
    return changes


class Service:
    """The node under systemd: notifications, watchdog, signals and config reload."""

    def __init__(self, context: NodeContext, load_config: Callable[[], NodeConfig],
                 notifier: Notifier | None = None) -> None:
        self.agent = context.agent
        self.hub = context.hub
        self.config = context.config
        self.model_version = context.model.version
        self.load_config = load_config
        self.notifier = notifier or Notifier()
        self.ready = False
        self.stopping = False
        self._reload = threading.Event()
        self._next_ping = 0.0

    def start(self) -> None:
        """Handle SIGTERM/SIGINT (stop), SIGHUP (reload) and report hub events as STATUS."""
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        hub = self.hub
        hub.subscribe(SourceProblem, lambda e: self.status(f"audio problem: {e.message}"))
        hub.subscribe(SourceRestored, lambda e: self.status(f"listening ({e.message})"))
        hub.subscribe(Status, self._on_status)

    def status(self, text: str) -> None:
        self.notifier.notify(f"STATUS={text}")

    def _on_status(self, event: Status) -> None:
        state = "listening" if event.listening else "muted"
        self.status(f"{state}: {event.detections} detections, {event.inferences} inferences, "
                    f"level {event.level_dbfs:.0f} dBFS")

    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        """Only flags and a datagram here: the audio loop ends itself after the current block."""
        log.info("%s received: stopping", signal.Signals(signum).name)
        self.stop()
        self.agent.stop()

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.notifier.notify("STOPPING=1", "STATUS=stopping")

    def heartbeat(self) -> None:
        """Called by the listening loop between blocks (and while waiting for a lost device)."""
        if not self.ready:
            self.ready = True
            self.notifier.notify("READY=1", f"STATUS=listening on {self.config.source}, "
                                 f"model {self.model_version}")
        if self._reload.is_set():
            self._reload.clear()
            self.reload()
        now = time.monotonic()
        if self.notifier.watchdog_s and now >= self._next_ping:
            self.notifier.notify("WATCHDOG=1")
            self._next_ping = now + self.notifier.watchdog_s * PING_EVERY

    def reload(self) -> bool:
        """Re-read the config; apply the live sections or keep the old config on errors.

        Only detector settings edited in the file since it was last read are applied: a
        value set meanwhile from Home Assistant stays unless the file changes that same key.
        A SIGHUP never stops the node, whatever the file holds."""
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        old = self.config
        running = self.agent.detector_requested
        try:
            new = self.load_config()
            edited = {f.name: getattr(new.detector, f.name)
                      for f in dataclasses.fields(new.detector)
                      if getattr(new.detector, f.name) != getattr(old.detector, f.name)}
            self.agent.update_detector(dataclasses.replace(running, **edited))
        except Exception as exc:  # noqa: BLE001 - any bad file is refused, never fatal
            if self.agent.detector_requested != running:
                self.agent.update_detector(running)
            reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            log.error("config reload refused, keeping the running config: %s", reason)
            self.notifier.notify("READY=1", f"STATUS=config reload refused: {reason}")
            return False
        changes = config_changes(old, new)
        live = {k: v for k, v in changes.items() if is_live(new, k)}
        later = sorted(set(changes) - set(live))
        logging.getLogger().setLevel(new.log_level.upper())
        self.config = dataclasses.replace(old, detector=new.detector, log_level=new.log_level)
        applied = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in sorted(live.items()))
        log.info("config reloaded: %s", applied or "no live changes")
        if later:
            log.warning("config changes that need a restart: %s", ", ".join(later))
        self.notifier.notify("READY=1", f"STATUS=config reloaded: {applied or 'no live changes'}")
        return True
