"""Keep audio flowing through device faults: report, back off, reopen, resume.

A USB microphone pulled out, an I2S overrun or a sound card that is not there yet at boot
raise `AudioSourceError`/`OSError`. Instead of ending the node (and waiting for systemd to
restart it), the listening loop reports the problem, waits with growing back-off and opens the
source again; the first block after an outage publishes `SourceRestored`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from edge_node.audio.base import AudioSource, AudioSourceError
from edge_node.events import SourceProblem, SourceRestored

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before each reopening attempt of one outage; the last repeats."""

HEARTBEAT_S = 0.5
"""While waiting, `heartbeat` is still called this often: the loop is alive, not stuck."""


def _wait(stop: threading.Event, seconds: float, heartbeat: Callable[[], None]) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        heartbeat()
        if stop.wait(min(left, HEARTBEAT_S)):
            return


def resilient_blocks(
    open_source: Callable[[], AudioSource],
    publish: Callable[[object], None],
    stop: threading.Event,
    heartbeat: Callable[[], None] = lambda: None,
    retry: bool = True,
    backoff: Sequence[float] = BACKOFF_S,
) -> Iterator[np.ndarray]:
    """Blocks from `open_source()` until it ends normally or `stop` is set.

    With `retry`, failures to open or read are published as `SourceProblem` and the source is
    reopened after a back-off; without it they are raised (files and pipes do not come back).
    `heartbeat` is called before every block and during waits (it feeds the watchdog).
    """
    failures = 0
    while not stop.is_set():
        problem: Exception | None = None
        try:
            with open_source() as source:
                for block in source:
                    if stop.is_set():
                        return
                    if failures:
                        log.info("audio is back after %d failed attempt(s)", failures)
                        publish(SourceRestored(f"audio is back after {failures} attempt(s)"))
                        failures = 0
                    heartbeat()
                    yield block
        except (AudioSourceError, OSError) as exc:
            if not retry:
                raise
            problem = exc
        if problem is None:
            return
        delay = backoff[min(failures, len(backoff) - 1)]
        failures += 1
        message = f"{problem}; retrying in {delay:g} s"
        (log.warning if failures == 1 else log.info)("audio source failed: %s", message)
        publish(SourceProblem(message, fatal=False))
        _wait(stop, delay, heartbeat)
