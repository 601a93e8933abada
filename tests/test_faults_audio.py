"""Hostile audio: non-finite samples on a float stream are repaired at the source, so one NaN
does not leave the node deaf (a real node process reads a real float32 pipe); a WAV whose header
lies is refused with a clear error and `classify DIR` goes on with the next file."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import wavfile

from edge_node.audio.base import PcmConverter
from edge_node.model import DEFAULT_MODEL
from tests.support.audio_signals import REPO
from tests.support.node_process import NodeProcess

pytestmark = pytest.mark.integration


def float32_stream(path, poison: dict[float, float]) -> bytes:
    """The recording as float32 PCM, with `value` written at each time `t` (seconds)."""
    rate, data = wavfile.read(path)
    audio = data.astype(np.float32) / (32768.0 if data.dtype == np.int16 else 1.0)
    for t, value in poison.items():
        audio[int(t * rate)] = value
    return audio.astype("<f4").tobytes()


def test_one_nan_or_inf_sample_on_a_float_stdin_stream_does_not_make_the_node_deaf(
        command_recording, tmp_path):
    path, events = command_recording
    before_first_word = events[0][1] - 0.5
    stream = float32_stream(path, {before_first_word: np.nan, before_first_word + 0.1: np.inf,
                                   events[1][1] - 0.5: -np.inf})
    node = NodeProcess(tmp_path, "--source", "stdin:16000:1:float32", "--model",
                       str(DEFAULT_MODEL), stdin=subprocess.PIPE)
    try:
        assert node.proc.stdin is not None
        node.proc.stdin.buffer.write(stream)
        node.proc.stdin.close()
        assert node.proc.wait(60) == 0, node.log()
        heard = [d["label"] for _, d in node.stdout]
        assert heard == [label for label, _, _ in events], node.log()
        assert node.log_has("replaced 1 non-finite sample(s) (NaN/Inf) with silence")
    finally:
        node.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, np.float32(3e38)])
def test_converter_output_stays_finite_after_a_bad_sample(bad):
    rng = np.random.default_rng(7)
    converter = PcmConverter(16000, 1, "float32", remove_dc=True)
    chunks = [rng.normal(0, 0.1, 1600).astype("<f4") for _ in range(20)]
    chunks[3][100] = bad
    out = np.concatenate([converter.convert(c.tobytes()) for c in chunks])
    assert np.isfinite(out).all()
    assert np.abs(out[-8000:]).max() > 0.01, "still hears the signal after the bad sample"


def wav_bytes(rate: int = 16000, channels: int = 1, bits: int = 16, fmt: int = 1,
              data: bytes = b"\x00\x01" * 800, riff_len: int | None = None) -> bytes:
    """A WAV file whose header says whatever it is told to (true or not)."""
    align = (channels * bits // 8) & 0xFFFF
    head = struct.pack("<HHIIHH", fmt, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", 16) + head + b"data"
            + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body) if riff_len is None else riff_len) + body


LIES = {"zero_channels": wav_bytes(channels=0), "65535_channels": wav_bytes(channels=65535),
        "7_bit": wav_bytes(bits=7), "0_bit": wav_bytes(bits=0), "1_hz": wav_bytes(rate=1),
        "riff_length_4": wav_bytes(riff_len=4), "mp3_format_tag": wav_bytes(fmt=0x55),
        "not_a_wav": b"hello" * 100}


def test_a_wav_that_lies_about_itself_is_refused_and_classify_dir_goes_on(command_recording,
                                                                         tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name, blob in LIES.items():
        (folder / f"{name}.wav").write_bytes(blob)
    (folder / "zz_good.wav").write_bytes(command_recording[0].read_bytes())
    done = subprocess.run([sys.executable, "-m", "edge_node", "classify", str(folder),
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if "cannot read WAV file" in ln]
    assert len(errors) == len(LIES), done.stderr
    assert [json.loads(ln)["file"] for ln in done.stdout.splitlines()] == [
        str(folder / "zz_good.wav")], "the good file after the bad ones is still classified"
