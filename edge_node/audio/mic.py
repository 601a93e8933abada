"""Live microphone capture through PyAudio/PortAudio (e.g. the SPH0645 I2S breakout)."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge_node.audio.base import (
    DEFAULT_BLOCK_SAMPLES,
    SAMPLE_FORMATS,
    SAMPLE_RATE,
    AudioSource,
    AudioSourceError,
    ConvertingSource,
    PcmConverter,
    choose_channel,
    scale_pcm,
)
from edge_node.audio.settings import AudioSettings
from edge_node.audio.wav import write_wav


def _pyaudio() -> ModuleType:
    """Import PyAudio only when a microphone is used, so file/stdin work without it."""
    try:
        import pyaudio
    except ImportError as e:
        raise AudioSourceError("pyaudio is not installed: pip install 'kws-edge-node[pi]'") from e
    return pyaudio


def _input_devices(pa: Any) -> list[dict[str, Any]]:
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if int(info["maxInputChannels"]) < 1:
            continue
        devices.append(
            {
                "index": index,
                "name": str(info["name"]),
                "max_input_channels": int(info["maxInputChannels"]),
                "default_sample_rate": float(info["defaultSampleRate"]),
                "host_api": str(pa.get_host_api_info_by_index(info["hostApi"])["name"]),
            }
        )
    return devices


def list_input_devices() -> list[dict[str, Any]]:
    """Input devices as dicts (index, name, max_input_channels, default_sample_rate, host_api)."""
    pa = _pyaudio().PyAudio()
    try:
        return _input_devices(pa)
    finally:
        pa.terminate()


def _describe(devices: list[dict[str, Any]]) -> str:
    return ", ".join(f"{d['index']}: {d['name']!r}" for d in devices) or "none"


def _resolve_device(pa: Any, device: int | str | None) -> dict[str, Any]:
    devices = _input_devices(pa)
    if device is None:
        try:
            index = int(pa.get_default_input_device_info()["index"])
        except OSError as e:
            raise AudioSourceError(
                f"microphone could not be opened: no default input device ({e}); "
                f"input devices: {_describe(devices)}"
            ) from e
        device = index
    if isinstance(device, int):
        for d in devices:
            if d["index"] == device:
                return d
        raise AudioSourceError(f"no input device with index {device} (have: {_describe(devices)})")
    wanted = device.lower()
    matches = [d for d in devices if wanted in d["name"].lower()]
    exact = [d for d in matches if d["name"].lower() == wanted]
    if not matches:
        raise AudioSourceError(f"no input device matching {device!r} (have: {_describe(devices)})")
    return (exact or matches)[0]


def candidate_rates(settings: AudioSettings, default_rate: float) -> list[int]:
    """Rates to try in order: the configured one only, else 16 kHz then the device default."""
    if settings.sample_rate is not None:
        return [settings.sample_rate]
    return list(dict.fromkeys([SAMPLE_RATE, int(round(default_rate))]))


class MicSource(ConvertingSource):
    """Capture from a PyAudio input device and condition it like every other source.

    The stream is opened here (errors surface at construction, not mid-pipeline); the first
    ``discard_s`` seconds are dropped on the first read and, with ``channel="auto"``, used to
    decide which channel carries the microphone (then in ``selected_channel``).
    """

    def __init__(self, settings: AudioSettings, block_samples: int = DEFAULT_BLOCK_SAMPLES) -> None:
        super().__init__(block_samples)
        self.settings = settings
        pyaudio = _pyaudio()
        self._pa = pyaudio.PyAudio()
        self._stream: Any = None
        try:
            self._open(pyaudio)
        except BaseException:
            self.close()
            raise
        self._frame_bytes = SAMPLE_FORMATS[settings.sample_format].itemsize * self.channels
        self._started = False

    def _open(self, pyaudio: ModuleType) -> None:
        s = self.settings
        self.device = _resolve_device(self._pa, s.device)
        self.channels = s.channels or min(self.device["max_input_channels"], 2)
        if isinstance(s.channel, int) and s.channel >= self.channels:
            raise AudioSourceError(
                f"channel {s.channel} does not exist: {self.device['name']!r} opened with "
                f"{self.channels} channel(s)"
            )
        fmt = pyaudio.paInt32 if s.sample_format == "int32" else pyaudio.paInt16
        problems = []
        for rate in candidate_rates(s, self.device["default_sample_rate"]):
            fpb = max(1, rate * s.frames_per_buffer_ms // 1000)
            try:
                self._pa.is_format_supported(
                    rate,
                    input_device=self.device["index"],
                    input_channels=self.channels,
                    input_format=fmt,
                )
                self._stream = self._pa.open(
                    rate=rate,
                    channels=self.channels,
                    format=fmt,
                    input=True,
                    input_device_index=self.device["index"],
                    frames_per_buffer=fpb,
                )
            except (OSError, ValueError) as e:
                problems.append(f"{rate} Hz: {e}")
                continue
            self.rate = rate
            self.frames_per_buffer = fpb
            return
        raise AudioSourceError(
            f"microphone could not be opened: {self.device['name']!r} with {self.channels} "
            f"channel(s) {s.sample_format}: {'; '.join(problems)}"
        )

    @property
    def selected_channel(self) -> int | str | None:
        """Channel in use (an index or "mix"); None until "auto" has decided."""
        return self.converter.selected if self._started else None

    def _read_frames(self, frames: int) -> bytes:
        try:
            return self._stream.read(frames, exception_on_overflow=False)
        except OSError as e:
            raise AudioSourceError(f"microphone read failed: {e}") from e

    def _start(self) -> None:
        s = self.settings
        discard = bytearray()
        remaining = int(math.ceil(s.discard_s * self.rate))
        while remaining > 0:
            chunk = self._read_frames(min(remaining, self.frames_per_buffer))
            discard += chunk
            remaining -= len(chunk) // self._frame_bytes
        channel: int | str = s.channel
        if channel == "auto" and discard:
            dtype = SAMPLE_FORMATS[s.sample_format]
            frames = scale_pcm(np.frombuffer(bytes(discard), dtype=dtype))
            choice = choose_channel(frames.reshape(-1, self.channels))
            channel = "mix" if choice is None else choice
        # With nothing discarded, "auto" is left to the converter (first second of audio).
        self.converter = PcmConverter(
            self.rate, self.channels, s.sample_format, channel, s.remove_dc, s.gain_db
        )
        self._started = True

    def _read_raw(self) -> bytes | None:
        if self._stream is None:
            return None
        return self._read_frames(self.frames_per_buffer)

    def read(self) -> np.ndarray | None:
        if not self._started and self._stream is not None:
            self._start()
        return super().read()

    def close(self) -> None:
        super().close()
        if self._stream is not None:
            try:
                self._stream.stop_stream()
                self._stream.close()
            finally:
                self._stream = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None


def record(source: AudioSource, seconds: float, path: str | Path) -> np.ndarray:
    """Capture ``seconds`` from any source into a 16 kHz mono 16-bit WAV; returns the samples.

    Hearing what the node hears is the quickest check of wiring, channel and gain.
    """
    samples = source.read_seconds(seconds)
    write_wav(path, samples, SAMPLE_RATE)
    return samples
