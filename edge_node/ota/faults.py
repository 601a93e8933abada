"""Fault injection for tests: `KWS_OTA_FAULT=<step>` makes the node SIGKILL itself there.

A SIGKILL leaves files exactly as a power cut would (minus unsynced page cache), so the
install and boot code can be tested against dying at every step.
"""

from __future__ import annotations

import logging
import os
import signal

FAULT_ENV = "KWS_OTA_FAULT"
STEPS = ("chunk", "staged", "loaded", "self-tested", "slot-written", "pointer-written",
         "swapped", "boot-trial")

log = logging.getLogger(__name__)


def maybe_die(step: str) -> None:
    """SIGKILL this process if $KWS_OTA_FAULT names `step`."""
    if os.environ.get(FAULT_ENV) == step:
        log.warning("fault injection: SIGKILL at %s", step)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
