"""The 128x64 OLED (or PNG files): last command, status, level meter, problems, OTA progress.

This package root imports nothing heavy so that `node.yaml` loads where Pillow and the OLED
driver (the `pi` extra) are missing; `start_display` imports them only when a display is wanted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edge_node.display.settings import DisplaySettings

if TYPE_CHECKING:
    from edge_node.display.extension import Display
    from edge_node.events import EventHub

log = logging.getLogger(__name__)

__all__ = ["DisplaySettings", "open_display", "start_display"]


def open_display(settings: DisplaySettings, hub: EventHub,
                 model_version: str = "") -> Display | None:
    """Open the configured backend, following hub events (rendering from `start()` on);
    None without a display."""
    if settings.backend == "none":
        return None
    try:
        from edge_node.display.backends import open_backend
        from edge_node.display.extension import Display
    except ImportError as exc:
        log.warning("no display: %s (pip install 'kws-edge-node[pi]')", exc)
        return None
    backend = open_backend(settings)
    if backend is None:
        return None
    log.info("display: %s", settings.backend)
    return Display(backend, settings, model_version).attach(hub)


def start_display(settings: DisplaySettings, hub: EventHub,
                  model_version: str = "") -> Display | None:
    """`open_display`, already rendering."""
    display = open_display(settings, hub, model_version)
    if display is not None:
        display.start()
    return display
