"""The `display` section of node.yaml (kept free of driver imports so config loads anywhere)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_node.setting import check_limits, setting

BACKEND_SPECS = "'auto', 'oled', 'png:DIR' or 'none'"


@dataclass(frozen=True)
class DisplaySettings:
    """Where the screen goes and how it protects the OLED from burn-in."""

    backend: str = "auto"
    """`auto` (the OLED when an I2C bus exists, else none), `oled`, `png:DIR` or `none`."""
    i2c_address: int = setting(0x3C, low=0x03, high=0x77, means="a 7-bit I2C address")
    """I2C address of the SSD1306 (0x3C on most 128x64 modules, 0x3D with the jumper moved)."""
    dim_after_s: float = setting(60.0, above=0.0, unit="s")
    """Seconds without a new command, message or state change before the screen dims."""
    blank_after_s: float = setting(300.0, unit="s")
    """Seconds without activity before the screen is switched off (OLED pixels wear out)."""
    max_fps: float = setting(4.0, low=0.2, high=30.0, unit="fps")
    """Most screen updates per second; keeps I2C traffic and CPU away from the audio loop."""
    rotate_180: bool = False
    """Turn the picture upside down (module mounted with its pins at the top)."""

    def __post_init__(self) -> None:
        kind = self.backend.partition(":")[0]
        if kind not in ("auto", "oled", "png", "none") or (kind == "png") != (":" in self.backend):
            raise ValueError(f"display backend {self.backend!r} must be {BACKEND_SPECS}")
        if self.backend == "png:":
            raise ValueError("display backend png: needs a directory, e.g. png:/tmp/screen")
        check_limits(self, "display")
        if self.blank_after_s < self.dim_after_s:
            raise ValueError("display needs dim_after_s <= blank_after_s")
