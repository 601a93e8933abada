"""An I2C bus with a pretend SSD1306 on it that decodes the driver's bytes back into pixels.

The real adafruit_ssd1306 driver writes to this bus, so the tests see what a panel would get:
each command as a separate [0x80, byte] write, each frame as 0x40 + 1024 bytes of display RAM
(8 pages x 128 columns, least significant bit = top pixel of the page).
"""

from __future__ import annotations

import errno

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 128, 64


class FakeI2C:
    """Records commands and display RAM for one device address; other addresses do not ack."""

    def __init__(self, address: int = 0x3C) -> None:
        self.address = address
        self.commands: list[int] = []
        self.ram = bytes(WIDTH * HEIGHT // 8)
        self.frames = 0
        self.fail_with: OSError | None = None

    def try_lock(self) -> bool:
        return True

    def unlock(self) -> None:
        return None

    def _check(self, address: int) -> None:
        if address != self.address:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        if self.fail_with is not None:
            raise self.fail_with

    def readfrom_into(self, address: int, buf: bytearray, *, start: int = 0,
                      end: int | None = None) -> None:
        self._check(address)

    def writeto(self, address: int, buf: bytes, *, start: int = 0, end: int | None = None) -> None:
        self._check(address)
        data = bytes(buf[start:end])
        if not data:
            return
        if data[0] == 0x80:
            self.commands.extend(data[1:])
        elif data[0] == 0x40:
            assert len(data) == 1 + len(self.ram), "expected a full frame (horizontal addressing)"
            self.ram = data[1:]
            self.frames += 1

    def image(self) -> Image.Image:
        """Display RAM as the 128x64 picture the panel shows."""
        pages = np.frombuffer(self.ram, dtype=np.uint8).reshape(HEIGHT // 8, WIDTH)
        bits = np.unpackbits(pages[:, None, :], axis=1, bitorder="little")
        return Image.fromarray((bits.reshape(HEIGHT, WIDTH) * 255).astype(np.uint8)).convert("1")

    def powered(self) -> bool:
        """Whether the last display on/off command was "on" (0xAF) rather than "off" (0xAE)."""
        last = [c for c in self.commands if c in (0xAE, 0xAF)]
        return bool(last) and last[-1] == 0xAF

    def contrast(self) -> int | None:
        """Argument of the last contrast command (0x81), if any."""
        where = [i for i, c in enumerate(self.commands[:-1]) if c == 0x81]
        return self.commands[where[-1] + 1] if where else None
