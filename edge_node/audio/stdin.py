"""Raw PCM on standard input, e.g. ``arecord -f S16_LE -r 16000 -c 1 -t raw | edge-node ...``."""

from __future__ import annotations

import sys
from typing import BinaryIO

from edge_node.audio.base import (
    DEFAULT_BLOCK_SAMPLES,
    SAMPLE_FORMATS,
    SAMPLE_RATE,
    ConvertingSource,
    PcmConverter,
)


class StdinSource(ConvertingSource):
    """Interleaved little-endian PCM from a blocking binary stream (stdin by default).

    Piping lets any capture tool (arecord, sox, ffmpeg, a network client) feed the node
    without PortAudio. Reads return whatever the pipe has, and a read that ends mid-frame is
    completed by the next one; end of file ends the stream. ``channel="auto"`` picks the
    loudest channel over the first second and keeps it. DC removal is on by default because
    a piped I2S microphone (``arecord -f S32_LE``) carries the same offset as through PyAudio.
    """

    def __init__(
        self,
        stream: BinaryIO | None = None,
        sample_rate: int = SAMPLE_RATE,
        channels: int = 1,
        sample_format: str = "int16",
        channel: int | str = "auto",
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        remove_dc: bool = True,
    ) -> None:
        super().__init__(block_samples)
        self.converter = PcmConverter(
            sample_rate, channels, sample_format, channel=channel, remove_dc=remove_dc
        )
        self.stream = stream if stream is not None else sys.stdin.buffer
        self._read = getattr(self.stream, "read1", self.stream.read)
        frame_bytes = SAMPLE_FORMATS[sample_format].itemsize * channels
        self._chunk_bytes = max(1, sample_rate // 10) * frame_bytes

    def _read_raw(self) -> bytes | None:
        data = self._read(self._chunk_bytes)
        return data if data else None

    def close(self) -> None:
        super().close()
        if self.stream is not sys.stdin.buffer:
            self.stream.close()
