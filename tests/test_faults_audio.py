"""Hostile audio: non-finite samples on a float stream are repaired at the source, so one NaN
does not leave the node deaf. A real node process reads a real float32 pipe."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from node_process import NodeProcess
from scipy.io import wavfile

from edge_node.audio.base import PcmConverter
from edge_node.model import DEFAULT_MODEL


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
