"""Microphone settings, defaulting to what the SPH0645 I2S breakout on a Raspberry Pi needs."""

from __future__ import annotations

from dataclasses import dataclass

from edge_node.setting import check_limits, setting

SAMPLE_FORMAT_NAMES = ("int16", "int32")


@dataclass(frozen=True)
class AudioSettings:
    """How to open and condition the microphone."""

    device: int | str | None = None
    """PyAudio input device index, or a case-insensitive substring of its name (None = default)."""

    sample_rate: int | None = setting(None, low=1, unit="Hz")
    """Rate to open the device at; None = try 16000, then the device's default rate."""

    channels: int | None = setting(None, low=1)
    """Channels to open; None = the device's max input channels, capped at 2."""

    sample_format: str = "int32"
    """"int16" or "int32"; the SPH0645 delivers 18 significant bits in 32-bit frames."""

    channel: int | str = "auto"
    """Channel carrying the signal: an index, or "auto" = the loudest during the discarded
    start-up (mixing the channels if they are equally loud)."""

    discard_s: float = setting(1.0, low=0.0, unit="s")
    """Seconds dropped after opening: the SPH0645 emits a loud click when its clock starts."""

    remove_dc: bool = True
    """High-pass away the DC offset (large on the SPH0645) before anything else sees it."""

    gain_db: float = setting(0.0, unit="dB")
    """Gain applied after DC removal; I2S MEMS microphones are quiet at 32-bit full scale."""

    frames_per_buffer_ms: int = setting(100, low=1, high=1000, unit="ms")
    """PortAudio buffer length; 100 ms keeps a Pi Zero's Python loop comfortably fed."""

    def __post_init__(self) -> None:
        if self.sample_format not in SAMPLE_FORMAT_NAMES:
            raise ValueError(
                f"unknown sample_format {self.sample_format!r}: use one of {SAMPLE_FORMAT_NAMES}"
            )
        if isinstance(self.device, bool) or not isinstance(self.device, int | str | None):
            raise ValueError(f"device must be an index, a name or None, got {self.device!r}")
        if isinstance(self.device, int) and self.device < 0:
            raise ValueError(f"device index must be >= 0, got {self.device}")
        if isinstance(self.device, str) and not self.device.strip():
            raise ValueError("device name must not be empty (use None for the default device)")
        check_limits(self, "")
        if isinstance(self.channel, str) and self.channel != "auto":
            raise ValueError(f"channel must be an index or 'auto', got {self.channel!r}")
        if isinstance(self.channel, int) and self.channel < 0:
            raise ValueError(f"channel index must be >= 0, got {self.channel}")
        if self.channels is not None and isinstance(self.channel, int):
            if self.channel >= self.channels:
                raise ValueError(
                    f"channel {self.channel} does not exist with channels={self.channels}"
                )
