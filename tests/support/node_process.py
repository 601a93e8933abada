"""A real `python -m edge_node run` child with a fake systemd notify socket.

Everything the child says is collected with arrival times: notify datagrams, stdout JSON
lines and stderr log lines, so tests can assert order and timing as systemd would see them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from scipy.io import wavfile

from tests.support.audio_signals import REPO, need_tool


class NodeProcess:
    """Start the node; `wait_for` polls what it said; `terminate` sends SIGTERM."""

    def __init__(self, tmp: Path, *args: str, watchdog_usec: int = 200_000,
                 abstract: bool = False, env: dict[str, str] | None = None,
                 stdin: int | None = subprocess.DEVNULL) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"edge-node-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp / "notify.sock")
            self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.notes: list[tuple[float, str]] = []
        self.stdout: list[tuple[float, dict[str, Any]]] = []
        self.stderr: list[tuple[float, str]] = []
        self.started = time.monotonic()
        child_env = {**os.environ, **(env or {}), "NOTIFY_SOCKET": address,
                     "WATCHDOG_USEC": str(watchdog_usec), "PYTHONPATH": str(REPO)}
        child_env.pop("JOURNAL_STREAM", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_node", "run", "--display", "none", *args],
            cwd=REPO, env=child_env, stdin=stdin, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self._threads = [threading.Thread(target=f, daemon=True) for f in (
            self._listen, lambda: self._lines(self.proc.stdout, self.stdout, json.loads),
            lambda: self._lines(self.proc.stderr, self.stderr, str.rstrip))]
        for t in self._threads:
            t.start()

    def _listen(self) -> None:
        """Until the child has exited and every datagram it sent is read."""
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if self.proc.poll() is not None:
                    return
                continue
            now = time.monotonic()
            self.notes += [(now, line) for line in data.decode().splitlines()]

    @staticmethod
    def _lines(stream: IO[str] | None, out: list, parse: Callable[[str], Any]) -> None:
        assert stream is not None
        for line in stream:
            out.append((time.monotonic(), parse(line)))

    def times(self, prefix: str) -> list[float]:
        """Arrival times of notify lines starting with `prefix`."""
        return [t for t, line in list(self.notes) if line.startswith(prefix)]

    def lines(self, prefix: str) -> list[str]:
        return [line for _, line in list(self.notes) if line.startswith(prefix)]

    def log_has(self, text: str) -> bool:
        return any(text in line for _, line in list(self.stderr))

    def wait_for(self, condition: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            if self.proc.poll() is not None and not condition():
                raise AssertionError(f"node exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; node said:\n{self.log()}\n{self.notes}")
            time.sleep(0.05)
        return result

    def log(self) -> str:
        return "\n".join(line for _, line in self.stderr)

    def terminate(self, timeout: float = 5.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds until exit)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        took = time.monotonic() - sent
        for t in self._threads:
            t.join(2.0)
        return code, took

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(2.0)
        self.sock.close()


def sph0645_raw(wav: Path, padded: Path, raw: Path) -> None:
    """The recording as the I2S microphone delivers it (int32 stereo, signal on one slot).

    Its first (word-free) second is repeated in front for the start-up discard, which also
    picks the channel from it; zeros after the end are what the plugin's stale reads repeat.
    """
    rate, data = wavfile.read(wav)
    mono = np.concatenate([data[:rate], data, np.zeros(rate, dtype=data.dtype)])
    wavfile.write(padded, rate, np.stack([np.zeros_like(mono), mono], axis=1))
    partial = raw.with_suffix(".part")
    subprocess.run([need_tool("sox"), str(padded), "-t", "raw", "-e", "signed-integer", "-b",
                    "32", "-c", "2", "-r", "16000", str(partial)], check=True)
    partial.rename(raw)
