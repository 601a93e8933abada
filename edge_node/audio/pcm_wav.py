"""Plain integer PCM WAV files with the standard library and numpy, without scipy.

Importing scipy.io.wavfile costs the node ~8 MB of RAM (issue 22), yet the files a node
replays (its recordings, the bundled example, the benchmark's streams) are plain PCM: a RIFF
file with a `fmt ` chunk of format tag 1 (8-, 16- or 32-bit samples) and a `data` chunk.
`read_plain_pcm` reads exactly those, with what `scipy.io.wavfile.read` returns for them (the
same rate, dtype, shape and values), and returns None for anything else (float samples,
WAVE_FORMAT_EXTENSIBLE, 24-bit, big-endian RIFX, RF64, a header that contradicts itself), for
the caller to hand to scipy, which reads it or says why not.

The standard library's `wave` reads no more formats (3.11: PCM only) and ignores nBlockAlign
and nAvgBytesPerSec, so it would accept headers that scipy rightly refuses; it writes, though.
"""

from __future__ import annotations

import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WAVE_FORMAT_PCM = 1
SAMPLE_DTYPES: dict[int, np.dtype[np.number]] = {
    1: np.dtype("u1"), 2: np.dtype("<i2"), 4: np.dtype("<i4")}
"""Sample container bytes -> the dtype scipy reads them as (8-bit WAV is unsigned)."""


@dataclass(frozen=True)
class PcmFormat:
    """What a plain PCM `fmt ` chunk says."""

    rate: int
    channels: int
    dtype: np.dtype[np.number]


def plain_format(fmt: bytes) -> PcmFormat | None:
    """The format of a `fmt ` chunk's first 16 bytes, or None unless it is plain integer PCM
    whose fields agree (block align = channels x container, byte rate = rate x block align,
    bits per sample fitting the container as scipy maps them)."""
    if len(fmt) < 16:
        return None
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag != WAVE_FORMAT_PCM or channels == 0 or align % channels or byte_rate != rate * align:
        return None
    width = align // channels
    if width not in SAMPLE_DTYPES or not (1 <= bits <= 8 if width == 1 else 8 < bits <= 8 * width):
        return None
    return PcmFormat(rate, channels, SAMPLE_DTYPES[width])


def read_plain_pcm(path: str | Path) -> tuple[int, np.ndarray] | None:
    """Rate and samples ((n,) mono, (n, channels) otherwise) of a plain PCM WAV file, as
    `scipy.io.wavfile.read` gives them; None for a file that is not one (see the module).

    The chunks are walked as scipy walks them (up to the RIFF length, pad bytes skipped, a
    `data` chunk longer than the file read as far as it goes); a second `fmt ` or `data` chunk
    is left to scipy too, as it would let the later one win."""
    with open(path, "rb") as fh:
        riff = fh.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
            return None
        end = struct.unpack("<I", riff[4:8])[0] + 8
        fmt: PcmFormat | None = None
        data: np.ndarray | None = None
        while fh.tell() < end:
            header = fh.read(8)
            if len(header) < 8:
                break  # the end of the file: fine after the data, an error before it
            chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
            if (chunk == b"fmt " and fmt is not None) or (chunk == b"data" and data is not None):
                return None
            if chunk == b"fmt ":
                fmt = plain_format(fh.read(16)) if size >= 16 else None
                if fmt is None:
                    return None
                fh.seek(size - 16 + size % 2, os.SEEK_CUR)
            elif chunk == b"data":
                if fmt is None:
                    return None
                data = np.fromfile(fh, fmt.dtype, count=size // fmt.dtype.itemsize)
                fh.seek(size % 2, os.SEEK_CUR)
            else:
                fh.seek(size + size % 2, os.SEEK_CUR)
    if fmt is None or data is None:
        return None
    return fmt.rate, data.reshape(-1, fmt.channels) if fmt.channels > 1 else data


def write_pcm16(path: str | Path, rate: int, pcm: np.ndarray) -> None:
    """Write 16-bit samples ((n,) mono or (n, channels)) as the WAV file scipy would write."""
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
