"""The whole screen as one pure function: `render(ScreenState) -> 128x64 1-bit image`.

The OLED and PNG backends only ship the image this returns, so the PNG files a laptop writes
are exactly what the panel shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 128, 64
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
METER_FLOOR_DBFS = -70.0
"""Level shown as an empty meter; 0 dBFS fills it."""

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class ScreenState:
    """Everything the screen shows; the display extension keeps the current one."""

    command: str | None = None
    """Last recognised command, or None before the first one."""
    confidence: float = 0.0
    """Its confidence in 0..1, drawn as a bar."""
    listening: bool = True
    """False when muted: the microphone icon is struck through and the meter hidden."""
    connected: bool | None = None
    """MQTT broker state; None when MQTT is not configured (no icon)."""
    model_version: str = ""
    level_dbfs: float | None = None
    """Current audio level for the meter; None hides it."""
    alert: tuple[str, str] | None = None
    """(title, detail) of a problem that replaces the main screen, e.g. no microphone."""
    progress: tuple[str, float] | None = None
    """(text, percent) of a long task such as an OTA model update; shown above everything."""


@lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> Font:
    """DejaVu (Debian's fonts-dejavu-core) if present, else Pillow's bundled scalable font."""
    path = FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size)


def _fit(text: str, width: int, start: int, bold: bool = True) -> Font:
    size = start
    while size > 8 and font(size, bold).getlength(text) > width:
        size -= 2
    return font(size, bold)


def _wrap(text: str, fnt: Font, width: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and fnt.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + "..."
    return lines


def _mic_icon(draw: ImageDraw.ImageDraw, x: int, listening: bool) -> None:
    draw.rounded_rectangle((x + 2, 0, x + 6, 6), radius=2, fill=1)
    draw.line((x + 4, 7, x + 4, 9), fill=1)
    draw.line((x + 1, 9, x + 7, 9), fill=1)
    if not listening:
        draw.line((x, 0, x + 8, 9), fill=0, width=3)
        draw.line((x, 0, x + 8, 9), fill=1)


def _broker_icon(draw: ImageDraw.ImageDraw, x: int, connected: bool) -> None:
    if connected:
        draw.ellipse((x, 1, x + 8, 9), fill=1)
    else:
        draw.ellipse((x, 1, x + 8, 9), outline=1)
        draw.line((x, 9, x + 8, 1), fill=1)


def _status_line(draw: ImageDraw.ImageDraw, state: ScreenState) -> None:
    small = font(9)
    _mic_icon(draw, 0, state.listening)
    if state.connected is not None:
        _broker_icon(draw, 12, state.connected)
    if state.connected is False:
        draw.text((24, 0), "no broker", font=small, fill=1)
    if state.model_version:
        version = f"v{state.model_version}"
        draw.text((WIDTH - small.getlength(version), 0), version, font=small, fill=1)
    draw.line((0, 11, WIDTH - 1, 11), fill=1)


def _bar(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], fraction: float) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=1)
    filled = round(max(0.0, min(1.0, fraction)) * (x1 - x0 - 3))
    if filled:
        draw.rectangle((x0 + 2, y0 + 2, x0 + 1 + filled, y1 - 2), fill=1)


def _main(draw: ImageDraw.ImageDraw, state: ScreenState) -> None:
    if state.command:
        big = _fit(state.command.upper(), WIDTH - 4, 28)
        draw.text((WIDTH // 2, 30), state.command.upper(), font=big, fill=1, anchor="mm")
        _bar(draw, (0, 48, 99, 55), state.confidence)
        draw.text((WIDTH - 1, 52), f"{round(100 * state.confidence)}%", font=font(9),
                  fill=1, anchor="rm")
    else:
        idle = "listening" if state.listening else "muted"
        draw.text((WIDTH // 2, 32), idle, font=font(14), fill=1, anchor="mm")
    if state.listening and state.level_dbfs is not None:
        level = (state.level_dbfs - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS
        width = round(max(0.0, min(1.0, level)) * WIDTH)
        if width:
            draw.rectangle((0, 59, width - 1, 63), fill=1)


def _alert(draw: ImageDraw.ImageDraw, title: str, detail: str) -> None:
    draw.text((WIDTH // 2, 21), title, font=_fit(title, WIDTH - 2, 14), fill=1, anchor="mm")
    small = font(9)
    for i, line in enumerate(_wrap(detail, small, WIDTH - 2, 3)):
        draw.text((1, 31 + 11 * i), line, font=small, fill=1)


def _progress(draw: ImageDraw.ImageDraw, text: str, percent: float) -> None:
    for i, line in enumerate(_wrap(text, font(11), WIDTH - 2, 2)):
        draw.text((WIDTH // 2, 19 + 12 * i), line, font=font(11), fill=1, anchor="mm")
    _bar(draw, (0, 42, WIDTH - 1, 51), percent / 100.0)
    draw.text((WIDTH // 2, 59), f"{round(percent)}%", font=font(9), fill=1, anchor="mm")


def render(state: ScreenState) -> Image.Image:
    """Draw `state` as the 128x64 monochrome picture the OLED shows."""
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    _status_line(draw, state)
    if state.progress is not None:
        _progress(draw, *state.progress)
    elif state.alert is not None:
        _alert(draw, *state.alert)
    else:
        _main(draw, state)
    return image
