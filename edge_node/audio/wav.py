"""WAV files as an audio source, for tests, benchmarks and replaying recorded commands."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np

from edge_node.audio.base import (
    DEFAULT_BLOCK_SAMPLES,
    SAMPLE_RATE,
    AudioSourceError,
    ConvertingSource,
    PcmConverter,
    choose_channel,
    scale_pcm,
)
from edge_node.audio.pcm_wav import read_plain_pcm, write_pcm16

WAV_RATES = (4000, 384000)
"""Sample rates a real recording has; a header outside them lies (a 1 Hz header would turn a
small file into hours of audio)."""


def _read_with_scipy(path: str | Path) -> tuple[int, np.ndarray]:
    """Any WAV scipy reads (float, 24-bit, WAVE_FORMAT_EXTENSIBLE, ...), or its reason not to."""
    from scipy.io import wavfile  # ~8 MB of RAM: only the files plain PCM reading leaves

    return wavfile.read(str(path))


def _load(path: str | Path) -> tuple[int, np.ndarray]:
    """The file's rate and samples, or AudioSourceError for a file that is not a sane WAV."""
    try:
        rate, data = read_plain_pcm(path) or _read_with_scipy(path)
    except FileNotFoundError as e:
        raise AudioSourceError(f"WAV file not found: {path}") from e
    except (OSError, ValueError, EOFError, IndexError, struct.error) as e:
        raise AudioSourceError(f"cannot read WAV file {path}: {e}") from e
    except Exception as e:  # noqa: BLE001 - scipy trips over lying headers (0 channels, ...)
        raise AudioSourceError(f"cannot read WAV file {path}: its header is inconsistent "
                               f"({type(e).__name__}: {e})") from e
    if data.ndim not in (1, 2) or rate <= 0:
        raise AudioSourceError(f"cannot read WAV file {path}: unexpected layout {data.shape}")
    if not WAV_RATES[0] <= rate <= WAV_RATES[1]:
        raise AudioSourceError(f"cannot read WAV file {path}: a sample rate of {rate} Hz is "
                               f"outside {WAV_RATES[0]}..{WAV_RATES[1]}")
    return int(rate), data


def converter_for(rate: int, data: np.ndarray, channel: int | str,
                  remove_dc: bool) -> PcmConverter:
    """The converter that conditions a whole decoded file (WAV here, FLAC in training)."""
    channels = 1 if data.ndim == 1 else data.shape[1]
    if channel == "auto" and channels > 1:
        # A file is known in full, so judge the channels over all of it, not just 1 s (a mono
        # file has nothing to judge: not scaling all of it spares a float64 copy of the file).
        choice = choose_channel(scale_pcm(data))
        channel = "mix" if choice is None else choice
    try:
        return PcmConverter(rate, channels, channel=channel, remove_dc=remove_dc)
    except ValueError as e:
        raise AudioSourceError(f"bad channel selection for WAV file: {e}") from e


class WavSource(ConvertingSource):
    """Read a WAV file of any rate, width and channel count as 16 kHz mono blocks.

    ``realtime=True`` hands out each block no earlier than a microphone could have captured
    it, so the rest of the pipeline can be exercised with live-like timing.
    """

    def __init__(
        self,
        path: str | Path,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        realtime: bool = False,
        channel: int | str = "auto",
        remove_dc: bool = False,
    ) -> None:
        super().__init__(block_samples)
        self.path = Path(path)
        self.rate, self._data = _load(self.path)
        self.converter = converter_for(self.rate, self._data, channel, remove_dc)
        self.realtime = realtime
        self._pos = 0
        self._chunk = max(1, self.rate // 10)
        self._started: float | None = None
        self._delivered = 0

    @property
    def duration_s(self) -> float:
        """Length of the file in seconds."""
        return len(self._data) / self.rate

    def _read_raw(self) -> np.ndarray | None:
        if self._pos >= len(self._data):
            return None
        chunk = self._data[self._pos : self._pos + self._chunk]
        self._pos += len(chunk)
        return chunk

    def read(self) -> np.ndarray | None:
        if self.realtime and self._started is None:
            self._started = time.monotonic()
        block = super().read()
        if block is not None and self._started is not None:
            self._delivered += 1
            due = self._started + self._delivered * self.block_samples / SAMPLE_RATE
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return block

    def close(self) -> None:
        super().close()
        self._data = self._data[:0]


def read_wav_mono16k(
    path: str | Path, channel: int | str = "auto", remove_dc: bool = False
) -> np.ndarray:
    """Whole file as 16 kHz mono float32, conditioned exactly as ``WavSource`` does."""
    rate, data = _load(path)
    converter = converter_for(rate, data, channel, remove_dc)
    return np.concatenate((converter.convert(data), converter.flush()))


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float samples in [-1, 1] as 16-bit PCM (mono, or (n, channels) for several)."""
    x = np.asarray(samples, dtype=np.float64)
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    try:
        write_pcm16(path, int(rate), pcm)
    except OSError as e:
        raise AudioSourceError(f"cannot write WAV file {path}: {e}") from e
