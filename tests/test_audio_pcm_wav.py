"""Plain PCM WAV without scipy (issue 22): whatever `read_plain_pcm` reads, it reads as
scipy.io.wavfile does (rate, dtype, shape, values); whatever it leaves (float, 24-bit, lying
headers), scipy decides; `write_wav` writes the bytes scipy would."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from edge_node.audio import AudioSourceError, read_wav_mono16k, write_wav
from edge_node.audio.pcm_wav import read_plain_pcm
from tests.support.audio_signals import speechlike

pytestmark = pytest.mark.unit


def scipy_read(path: Path) -> tuple[int, np.ndarray] | None:
    """What scipy reads, or None where it refuses the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # WavFileWarning about skipped chunks
        try:
            return wavfile.read(str(path))
        except Exception:  # noqa: BLE001 - any refusal: lying headers trip it in many ways
            return None


def assert_same(ours: tuple[int, np.ndarray] | None, theirs: tuple[int, np.ndarray] | None) -> None:
    assert ours is not None and theirs is not None
    assert ours[0] == theirs[0]
    assert ours[1].dtype == theirs[1].dtype and ours[1].shape == theirs[1].shape
    np.testing.assert_array_equal(ours[1], theirs[1])


def samples(dtype: str, rate: int, channels: int) -> np.ndarray:
    x = speechlike(rate, 0.3)
    x = x if channels == 1 else np.stack([x * (0.9 ** c) for c in range(channels)], 1)
    if dtype == "uint8":
        return np.round(x * 127 + 128).astype(np.uint8)
    if dtype == "float32":
        return x.astype(np.float32)
    info = np.iinfo(dtype)
    return np.round(x * info.max).astype(dtype)


@pytest.mark.parametrize(("dtype", "rate", "channels"), [
    ("int16", 16000, 1), ("int32", 16000, 1), ("uint8", 16000, 1), ("int16", 16000, 2),
    ("int32", 48000, 2), ("int16", 44100, 1), ("int16", 22050, 4)])
def test_plain_pcm_reads_as_scipy_does(tmp_path: Path, dtype: str, rate: int,
                                       channels: int) -> None:
    path = tmp_path / "in.wav"
    wavfile.write(str(path), rate, samples(dtype, rate, channels))
    assert_same(read_plain_pcm(path), scipy_read(path))


@pytest.mark.parametrize("channels", [1, 2])
def test_float_files_are_left_to_scipy_and_read_the_same(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "float.wav"
    data = samples("float32", 16000, channels)
    wavfile.write(str(path), 16000, data)
    assert read_plain_pcm(path) is None, "WAVE_FORMAT_IEEE_FLOAT is scipy's"
    expected = data if channels == 1 else data.mean(axis=1)
    np.testing.assert_allclose(read_wav_mono16k(path), expected, atol=1e-7)


def fmt_chunk(tag: int = 1, channels: int = 1, rate: int = 16000, bits: int = 16,
              align: int | None = None, byte_rate: int | None = None, extra: bytes = b"") -> bytes:
    align = channels * ((bits + 7) // 8) if align is None else align
    byte_rate = rate * align if byte_rate is None else byte_rate
    body = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits) + extra
    return chunk(b"fmt ", body)


def chunk(name: bytes, body: bytes, size: int | None = None) -> bytes:
    pad = b"\x00" if len(body) % 2 else b""
    return name + struct.pack("<I", len(body) if size is None else size) + body + pad


def riff(*chunks: bytes, size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


PCM = np.arange(-600, 600, 3, dtype="<i2").tobytes()

PLAIN = {
    "odd_list_chunk_before_data": riff(fmt_chunk(), chunk(b"LIST", b"abc"), chunk(b"data", PCM)),
    "fmt_18_bytes": riff(fmt_chunk(extra=b"\x00\x00"), chunk(b"data", PCM)),
    "chunk_after_data": riff(fmt_chunk(), chunk(b"data", PCM), chunk(b"LIST", b"info")),
    "data_longer_than_file": riff(fmt_chunk(), chunk(b"data", PCM, size=0x7FFFFFF0),
                                  size=0xFFFFFFF0),
    "riff_longer_than_file": riff(fmt_chunk(), chunk(b"data", PCM), size=0xFFFFFFF0),
    "odd_byte_count": riff(fmt_chunk(), chunk(b"data", PCM[:-1])),
    "empty_data": riff(fmt_chunk(channels=2), chunk(b"data", b"")),
    "12_bits_in_16": riff(fmt_chunk(bits=12), chunk(b"data", PCM)),
}
"""Well-formed or harmlessly odd files the plain reader must read exactly as scipy."""

LEFT_TO_SCIPY = {
    "7_bit_block_align_0": riff(fmt_chunk(bits=7, align=0), chunk(b"data", PCM)),
    "0_bit": riff(fmt_chunk(bits=0, align=0), chunk(b"data", PCM)),
    "65535_channels": riff(fmt_chunk(channels=65535, align=65534), chunk(b"data", PCM)),
    "zero_channels": riff(fmt_chunk(channels=0, align=0), chunk(b"data", PCM)),
    "byte_rate_lies": riff(fmt_chunk(byte_rate=12345), chunk(b"data", PCM)),
    "8_bits_in_16": riff(fmt_chunk(bits=8, align=2), chunk(b"data", PCM)),
    "24_bit": riff(fmt_chunk(bits=24), chunk(b"data", PCM[: len(PCM) // 3 * 3])),
    "riff_length_4": riff(fmt_chunk(), chunk(b"data", PCM), size=4),
    "mp3_tag": riff(fmt_chunk(tag=0x55), chunk(b"data", PCM)),
    "extensible": riff(fmt_chunk(tag=0xFFFE, extra=b"\x00\x00"), chunk(b"data", PCM)),
    "data_before_fmt": riff(chunk(b"data", PCM), fmt_chunk()),
    "two_data_chunks": riff(fmt_chunk(), chunk(b"data", PCM), chunk(b"data", PCM[:40])),
    "fmt_after_data": riff(fmt_chunk(), chunk(b"data", PCM), fmt_chunk(rate=8000)),
    "short_fmt": riff(chunk(b"fmt ", b"\x01\x00\x01\x00"), chunk(b"data", PCM)),
    "no_data": riff(fmt_chunk()),
    "truncated_header": riff(fmt_chunk(), chunk(b"data", PCM))[:30],
    "rifx": b"RIFX" + riff(fmt_chunk(), chunk(b"data", PCM))[4:],
    "not_a_wav": b"hello" * 100,
}
"""Files whose verdict is scipy's: it reads some of them, refuses the others."""


@pytest.mark.parametrize("name", PLAIN)
def test_odd_but_plain_files_read_as_scipy_does(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.wav"
    path.write_bytes(PLAIN[name])
    assert_same(read_plain_pcm(path), scipy_read(path))


@pytest.mark.parametrize("name", LEFT_TO_SCIPY)
def test_anything_else_is_left_to_scipy(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.wav"
    path.write_bytes(LEFT_TO_SCIPY[name])
    assert read_plain_pcm(path) is None


def test_a_partial_last_frame_is_refused_as_scipy_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "partial.wav"
    path.write_bytes(riff(fmt_chunk(channels=2), chunk(b"data", PCM[:-2])))
    assert scipy_read(path) is None
    with pytest.raises(AudioSourceError, match="cannot read WAV file .*cannot reshape"):
        read_wav_mono16k(path)


@pytest.mark.parametrize("shape", [(4800,), (4800, 2), (0,)])
def test_write_wav_writes_the_bytes_scipy_writes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(1).uniform(-1.2, 1.2, shape)
    ours, theirs = tmp_path / "ours.wav", tmp_path / "scipy.wav"
    write_wav(ours, x, 22050)
    wavfile.write(str(theirs), 22050,
                  np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16))
    assert ours.read_bytes() == theirs.read_bytes()
