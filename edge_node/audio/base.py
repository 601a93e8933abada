"""The audio-source interface and the conditioning every source shares.

Every source (microphone, WAV file, stdin) hands raw PCM to one ``PcmConverter`` so that the
keyword spotter sees identically scaled, filtered and resampled audio whatever the input.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from types import TracebackType

import numpy as np

from edge_node.audio.resample import StreamingResampler

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The node's one sample rate: every block a source yields, every feature profile, every
training clip."""

DEFAULT_BLOCK_SAMPLES = 1600
"""100 ms at 16 kHz: short enough for low latency, long enough to keep Python overhead low."""

SAMPLE_FORMATS: dict[str, np.dtype[np.number]] = {
    "int16": np.dtype("<i2"), "int32": np.dtype("<i4"), "float32": np.dtype("<f4")}
"""Raw PCM formats accepted as bytes (little-endian, as ALSA/PortAudio deliver them)."""

DC_CUTOFF_HZ = 20.0
"""High-pass corner that removes the SPH0645's DC offset while keeping all of speech."""

EQUAL_ENERGY_RATIO = 2.0
"""Channels within this power ratio (3 dB) count as equal, so "auto" mixes them."""

REPAIR_LOG_EVERY_S = 10.0
"""Repaired non-finite samples are logged at most this often (a broken stream is loud)."""


class AudioSourceError(RuntimeError):
    """An audio source cannot deliver audio; the message says what to fix."""


def scale_pcm(samples: np.ndarray) -> np.ndarray:
    """Map integer PCM to float64 in [-1, 1] by its dtype; floats pass through."""
    if samples.dtype == np.uint8:
        return (samples.astype(np.float64) - 128.0) / 128.0
    if samples.dtype.kind == "i":
        return samples.astype(np.float64) / float(2 ** (8 * samples.dtype.itemsize - 1))
    if samples.dtype.kind == "f":
        return samples.astype(np.float64)
    raise ValueError(f"unsupported sample dtype {samples.dtype}")


class DcBlocker:
    """First-order high-pass at DC_CUTOFF_HZ (the bilinear Butterworth), state kept across calls.

    Written with numpy (a closed form per chunk) instead of scipy.signal.lfilter: importing
    scipy.signal alone costs the node ~60 MB of RAM, more than everything else together.
    """

    CHUNK = 512
    """Samples per closed-form step; keeps pole**-n far from float64 precision limits."""

    def __init__(self, rate: int, cutoff_hz: float = DC_CUTOFF_HZ) -> None:
        t = np.tan(np.pi * cutoff_hz / rate)
        self.pole = (1.0 - t) / (1.0 + t)
        self.gain = (1.0 + self.pole) / 2.0
        n = np.arange(self.CHUNK)
        self._rise = self.pole ** -n.astype(np.float64)
        self._decay = self.pole ** n.astype(np.float64)
        self._x_prev: float | None = None
        self._y_prev = 0.0

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x_prev is None:
            self._x_prev = float(x[0])  # start in steady state: a big offset gives no click
        out = np.empty_like(x)
        for start in range(0, x.size, self.CHUNK):
            chunk = x[start : start + self.CHUNK]
            m = chunk.size
            diff = np.diff(chunk, prepend=self._x_prev) * self.gain
            acc = np.cumsum(diff * self._rise[:m])
            y = self._decay[:m] * (self.pole * self._y_prev + acc)
            out[start : start + m] = y
            self._x_prev, self._y_prev = float(chunk[-1]), float(y[-1])
        return out


def choose_channel(frames: np.ndarray) -> int | None:
    """Pick the channel carrying the signal (most AC energy); None means mix (all alike).

    The SPH0645 delivers its data on one I2S slot and zeros (or noise) on the other, and
    which slot depends on its SEL pin wiring, so the louder channel is the microphone.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim == 1 or frames.shape[1] == 1:
        return 0
    energy = frames.var(axis=0) if len(frames) else np.zeros(frames.shape[1])
    order = np.argsort(energy)[::-1]
    if energy[order[0]] > EQUAL_ENERGY_RATIO * energy[order[1]]:
        return int(order[0])
    return None


class PcmConverter:
    """Stateful raw-PCM -> 16 kHz mono float32 conditioning, fed chunk by chunk.

    Steps: scale to [-1, 1], select the channel, remove DC (one-pole high-pass whose state
    carries across chunks), apply gain, resample to 16 kHz, clip. Bytes are decoded with
    ``sample_format`` and may end mid-frame (the remainder waits for the next chunk); numpy
    arrays are scaled by their own dtype. ``channel="auto"`` buffers the first ``auto_s``
    seconds, picks the loudest channel (or mixes if equal) and keeps that choice.
    """

    def __init__(
        self,
        rate: int,
        channels: int = 1,
        sample_format: str = "int16",
        channel: int | str = "auto",
        remove_dc: bool = True,
        gain_db: float = 0.0,
        auto_s: float = 1.0,
    ) -> None:
        if sample_format not in SAMPLE_FORMATS:
            raise ValueError(
                f"unknown sample_format {sample_format!r} (use one of {list(SAMPLE_FORMATS)})"
            )
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if isinstance(channel, int) and not 0 <= channel < channels:
            raise ValueError(f"channel {channel} out of range for {channels} channel(s)")
        if isinstance(channel, str) and channel not in ("auto", "mix"):
            raise ValueError(f"channel must be an index, 'auto' or 'mix', got {channel!r}")
        self.rate = int(rate)
        self.channels = int(channels)
        self.dtype = SAMPLE_FORMATS[sample_format]
        self.selected: int | str | None = "mix" if channels == 1 else channel
        if self.selected == "auto":
            self.selected = None
        self._auto_frames = max(1, int(auto_s * self.rate))
        self._auto_buffer: list[np.ndarray] = []
        self._leftover = b""
        self.remove_dc = remove_dc
        self.gain_db = gain_db
        self._gain = 10.0 ** (gain_db / 20.0)
        self._dc = DcBlocker(self.rate) if remove_dc else None
        self._resampler = StreamingResampler(self.rate, SAMPLE_RATE)
        self.repaired = 0
        """Non-finite samples (NaN, Inf from a float stream) replaced by silence so far."""
        self._repair_logged_at = -REPAIR_LOG_EVERY_S

    def _repair(self, samples: np.ndarray) -> np.ndarray:
        """One NaN would poison the DC blocker's state and every block after it: replace
        non-finite samples with silence, and say so."""
        bad = ~np.isfinite(samples)
        count = int(bad.sum())
        if not count:
            return samples
        samples = np.where(bad, 0.0, samples)
        self.repaired += count
        now = time.monotonic()
        if now - self._repair_logged_at >= REPAIR_LOG_EVERY_S:
            self._repair_logged_at = now
            log.warning("audio: replaced %d non-finite sample(s) (NaN/Inf) with silence "
                        "(%d so far)", count, self.repaired)
        return samples

    def _frames(self, data: bytes | np.ndarray) -> np.ndarray:
        if isinstance(data, bytes | bytearray | memoryview):
            raw = self._leftover + bytes(data)
            frame_bytes = self.dtype.itemsize * self.channels
            usable = len(raw) - len(raw) % frame_bytes
            self._leftover = raw[usable:]
            samples = scale_pcm(np.frombuffer(raw[:usable], dtype=self.dtype))
        else:
            samples = scale_pcm(np.asarray(data))
        samples = self._repair(samples)
        if samples.ndim == 1 and self.channels > 1:
            samples = samples.reshape(-1, self.channels)
        elif samples.ndim == 2 and samples.shape[1] != self.channels:
            raise ValueError(f"got {samples.shape[1]} channels, expected {self.channels}")
        return samples

    def _select(self, frames: np.ndarray) -> np.ndarray:
        if frames.ndim == 1:
            return frames
        if isinstance(self.selected, int):
            return frames[:, self.selected]
        return frames.mean(axis=1)

    def _condition(self, frames: np.ndarray) -> np.ndarray:
        mono = self._select(frames)
        if self._dc is not None and len(mono):
            mono = self._dc.process(mono)
        out = self._resampler.process(mono * self._gain)
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def _decide(self) -> np.ndarray:
        frames = np.concatenate(self._auto_buffer)
        self._auto_buffer = []
        choice = choose_channel(frames)
        self.selected = "mix" if choice is None else choice
        return frames

    def convert(self, data: bytes | np.ndarray) -> np.ndarray:
        """Condition one chunk; returns however many 16 kHz samples are final so far."""
        frames = self._frames(data)
        if self.selected is None:
            self._auto_buffer.append(frames)
            if sum(len(f) for f in self._auto_buffer) < self._auto_frames:
                return np.zeros(0, dtype=np.float32)
            frames = self._decide()
        return self._condition(frames)

    def flush(self) -> np.ndarray:
        """End of stream: release buffered and resampler-delayed samples."""
        out = np.zeros(0, dtype=np.float32)
        if self.selected is None and self._auto_buffer:
            out = self._condition(self._decide())
        tail = np.clip(self._resampler.flush(), -1.0, 1.0).astype(np.float32)
        return np.concatenate((out, tail))


class Reblocker:
    """Cut a stream of arbitrary-sized chunks into blocks of exactly ``block_samples``."""

    def __init__(self, block_samples: int = DEFAULT_BLOCK_SAMPLES) -> None:
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        self.block_samples = block_samples
        self._buffer = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Add samples; return every block that is now complete."""
        self._buffer = np.concatenate((self._buffer, np.asarray(samples, dtype=np.float32)))
        n = len(self._buffer) // self.block_samples
        blocks = [
            self._buffer[i * self.block_samples : (i + 1) * self.block_samples].copy()
            for i in range(n)
        ]
        self._buffer = self._buffer[n * self.block_samples :]
        return blocks

    def flush(self) -> np.ndarray | None:
        """Return the remainder zero-padded to a full block, or None if nothing is left."""
        if len(self._buffer) == 0:
            return None
        block = np.zeros(self.block_samples, dtype=np.float32)
        block[: len(self._buffer)] = self._buffer
        self._buffer = np.zeros(0, dtype=np.float32)
        return block


class AudioSource(ABC):
    """Anything that yields 16 kHz mono float32 blocks in [-1, 1] of ``block_samples``."""

    def __init__(self, block_samples: int = DEFAULT_BLOCK_SAMPLES) -> None:
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        self.block_samples = block_samples

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """Return the next block (the last one of a finite stream zero-padded), None at end."""

    @abstractmethod
    def close(self) -> None:
        """Release the device, file or stream; reading afterwards returns None."""

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        while (block := self.read()) is not None:
            yield block

    def read_seconds(self, seconds: float) -> np.ndarray:
        """The next ``seconds`` of audio (fewer samples if the stream ends first)."""
        wanted = int(round(seconds * SAMPLE_RATE))
        blocks: list[np.ndarray] = []
        have = 0
        while have < wanted and (block := self.read()) is not None:
            blocks.append(block)
            have += len(block)
        return np.concatenate(blocks)[:wanted] if blocks else np.zeros(0, dtype=np.float32)


class ConvertingSource(AudioSource):
    """A source that reads raw PCM chunks and conditions them through a ``PcmConverter``."""

    converter: PcmConverter

    def __init__(self, block_samples: int = DEFAULT_BLOCK_SAMPLES) -> None:
        super().__init__(block_samples)
        self._reblocker = Reblocker(block_samples)
        self._ready: deque[np.ndarray] = deque()
        self._ended = False

    @abstractmethod
    def _read_raw(self) -> bytes | np.ndarray | None:
        """Return the next raw chunk (any size, may be empty), None at end of stream."""

    def read(self) -> np.ndarray | None:
        while not self._ready:
            if self._ended:
                return None
            raw = self._read_raw()
            if raw is None:
                self._ended = True
                self._ready.extend(self._reblocker.push(self.converter.flush()))
                last = self._reblocker.flush()
                if last is not None:
                    self._ready.append(last)
            else:
                self._ready.extend(self._reblocker.push(self.converter.convert(raw)))
        return self._ready.popleft()

    def close(self) -> None:
        """End the stream now; subclasses release their resources and call this."""
        self._ready.clear()
        self._ended = True
