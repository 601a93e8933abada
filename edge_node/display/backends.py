"""Where rendered screens go: the SSD1306 OLED over I2C, PNG files, or nowhere.

Backends only ship a finished 128x64 1-bit image and switch the panel between full, dim and
off; they never draw.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from edge_node.display.render import HEIGHT, WIDTH
from edge_node.display.settings import DisplaySettings

log = logging.getLogger(__name__)

MODES = ("on", "dim", "off")
FULL_CONTRAST, DIM_CONTRAST = 0xCF, 0x01
"""SSD1306 contrast for normal use (the driver's default) and dimmed (lowest visible)."""


class DisplayUnavailable(RuntimeError):
    """No display answers; the node runs on without one."""


class Backend(Protocol):
    """Ships images; `set_mode` switches between "on", "dim" and "off"."""

    def show(self, image: Image.Image) -> None: ...

    def set_mode(self, mode: str) -> None: ...

    def close(self) -> None: ...


class OledBackend:
    """A 128x64 SSD1306 on an I2C bus object (busio.I2C on a Pi, a fake one in tests)."""

    def __init__(self, i2c: Any, address: int = 0x3C) -> None:
        import adafruit_ssd1306

        try:
            self.oled = adafruit_ssd1306.SSD1306_I2C(WIDTH, HEIGHT, i2c, addr=address)
        except (ValueError, OSError) as exc:
            raise DisplayUnavailable(f"no SSD1306 OLED at I2C address {address:#x}: {exc}") from exc
        self.mode = "on"

    def show(self, image: Image.Image) -> None:
        if self.mode == "off":
            return
        self.oled.image(image)
        self.oled.show()

    def set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        if mode == "off":
            self.oled.fill(0)
            self.oled.show()
            self.oled.poweroff()
        else:
            if self.mode == "off":
                self.oled.poweron()
            self.oled.contrast(DIM_CONTRAST if mode == "dim" else FULL_CONTRAST)
        self.mode = mode

    def close(self) -> None:
        self.set_mode("off")


class PngBackend:
    """Writes each shipped frame as `frame-NNNNNN.png` (the newest `keep` kept) and `screen.png`.

    For laptops and the demo: `screen.png` always holds what an OLED would show now.
    """

    def __init__(self, directory: Path | str, keep: int = 200) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DisplayUnavailable(f"cannot create PNG display directory: {exc}") from exc
        self.keep = keep
        self.frames = 0
        self.mode = "on"
        self._last: Image.Image = Image.new("1", (WIDTH, HEIGHT), 0)

    def _write(self, image: Image.Image) -> None:
        self.frames += 1
        frame = self.directory / f"frame-{self.frames:06d}.png"
        image.save(frame)
        tmp = self.directory / ".screen.png.tmp"
        image.save(tmp, format="PNG")
        os.replace(tmp, self.directory / "screen.png")
        stale = sorted(glob.glob(str(self.directory / "frame-*.png")))[: -self.keep]
        for name in stale:
            Path(name).unlink(missing_ok=True)

    def show(self, image: Image.Image) -> None:
        self._last = image
        if self.mode != "off":
            self._write(image)

    def set_mode(self, mode: str) -> None:
        """Dim has no PNG equivalent; off writes a black frame like a blanked panel."""
        if mode == self.mode:
            return
        self.mode = mode
        if mode == "off":
            self._write(Image.new("1", (WIDTH, HEIGHT), 0))
        else:
            self._write(self._last)

    def close(self) -> None:
        return None


def open_i2c() -> Any:
    """The Pi's I2C bus through Blinka, or DisplayUnavailable if there is none."""
    if not glob.glob("/dev/i2c-*"):
        raise DisplayUnavailable("no I2C bus (/dev/i2c-*): enable I2C with raspi-config")
    try:
        import board
        import busio

        return busio.I2C(board.SCL, board.SDA)
    except (ImportError, AttributeError, NotImplementedError, RuntimeError, OSError,
            ValueError) as exc:
        raise DisplayUnavailable(f"I2C bus not usable through Blinka: {exc}") from exc


def open_backend(settings: DisplaySettings) -> Backend | None:
    """The configured backend; None for `none`, or when `auto` finds no OLED (logged once)."""
    kind, _, rest = settings.backend.partition(":")
    if kind == "none":
        return None
    try:
        if kind == "png":
            return PngBackend(rest)
        return OledBackend(open_i2c(), settings.i2c_address)
    except DisplayUnavailable as exc:
        level = logging.INFO if kind == "auto" else logging.WARNING
        log.log(level, "no display: %s; running without one", exc)
        return None
