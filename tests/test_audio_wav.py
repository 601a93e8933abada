"""WavSource: every rate, width and channel layout ends up as the same 16 kHz mono audio."""

import math
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from edge_node.audio import AudioSourceError, WavSource, read_wav_mono16k, write_wav
from tests.support.audio_signals import (
    correlation,
    espeak_word,
    need_tool,
    speechlike,
    to_16k,
    write_pcm_wav,
)
from tests.support.node_imports import modules_after_run


def _collect(source: WavSource) -> list[np.ndarray]:
    with source:
        return list(source)


@pytest.mark.unit
@pytest.mark.parametrize("layout", ["mono", "left", "right"])
@pytest.mark.parametrize("dtype", ["int16", "int32", "float32"])
@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_formats_and_layouts_match_reference(
    tmp_path: Path, rate: int, dtype: str, layout: str
) -> None:
    x = speechlike(rate, 0.77)
    z = np.zeros_like(x)
    data = {"mono": x, "left": np.stack([x, z], 1), "right": np.stack([z, x], 1)}[layout]
    path = tmp_path / "in.wav"
    write_pcm_wav(path, data, rate, dtype)
    blocks = _collect(WavSource(path, block_samples=1600))
    ref = to_16k(x, rate)
    assert len(blocks) == math.ceil(len(ref) / 1600)
    assert all(b.shape == (1600,) and b.dtype == np.float32 for b in blocks)
    y = np.concatenate(blocks)
    assert np.abs(y[: len(ref)] - ref).max() < 1e-3
    assert not y[len(ref) :].any(), "the last block is padded with zeros"
    np.testing.assert_array_equal(read_wav_mono16k(path), y[: len(ref)])


@pytest.mark.integration
@pytest.mark.parametrize(
    "out_opts,effects,exact",
    [
        (["-e", "signed-integer", "-b", "24", "-c", "2", "-r", "44100"], ["remix", "0", "1"], 0),
        (["-e", "unsigned-integer", "-b", "8"], [], 2e-2),
        (["-e", "signed-integer", "-b", "32", "-c", "2", "-r", "22050"], ["remix", "1", "0"], 0),
        (["-e", "signed-integer", "-b", "16", "-c", "2"], ["remix", "0", "1"], 1e-4),
    ],
    ids=["24bit-44k1-right", "8bit-unsigned", "32bit-22k05-left", "16bit-right"],
)
def test_sox_made_speech(
    tmp_path: Path, out_opts: list[str], effects: list[str], exact: float
) -> None:
    speech = espeak_word(tmp_path, "stop", 16000)
    src = tmp_path / "speech16k.wav"
    wavfile.write(str(src), 16000, speech.astype(np.float32))
    out = tmp_path / "converted.wav"
    subprocess.run([need_tool("sox"), str(src), *out_opts, str(out), *effects], check=True)
    y = read_wav_mono16k(out)
    assert abs(len(y) - len(speech)) <= 1
    n = min(len(y), len(speech))
    # sox's resampler is not ours, so resampled files are compared by shape, others exactly.
    assert correlation(y[:n], speech[:n]) > 0.99
    assert np.std(y[:n]) == pytest.approx(np.std(speech[:n]), rel=0.05), "scaling by width"
    if exact:
        assert np.abs(y[:n] - speech[:n]).max() < exact


@pytest.mark.unit
def test_explicit_channel_and_equal_channels_mix(tmp_path: Path) -> None:
    x = speechlike(16000, 0.5)
    path = tmp_path / "both.wav"
    write_pcm_wav(path, np.stack([x, 0.8 * x], 1), 16000, "float32")
    np.testing.assert_allclose(read_wav_mono16k(path, channel=1), 0.8 * x, atol=1e-6)
    np.testing.assert_allclose(read_wav_mono16k(path), 0.9 * x, atol=1e-6)
    with pytest.raises(AudioSourceError, match="out of range"):
        WavSource(path, channel=2)


@pytest.mark.unit
def test_remove_dc_option(tmp_path: Path) -> None:
    x = speechlike(16000, 1.0) * 0.2 + 0.4
    path = tmp_path / "dc.wav"
    write_pcm_wav(path, x, 16000, "float32")
    assert read_wav_mono16k(path).mean() == pytest.approx(0.4, abs=0.02)
    assert abs(read_wav_mono16k(path, remove_dc=True)[3200:].mean()) < 2e-3


@pytest.mark.unit
def test_realtime_paces_blocks_like_a_microphone(tmp_path: Path) -> None:
    path = tmp_path / "half.wav"
    write_pcm_wav(path, speechlike(16000, 0.5), 16000, "int16")
    start = time.monotonic()
    blocks = _collect(WavSource(path, realtime=True))
    elapsed = time.monotonic() - start
    assert len(blocks) == 5
    assert 0.4 <= elapsed < 2.0


@pytest.mark.unit
def test_close_ends_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    write_pcm_wav(path, speechlike(16000, 1.0), 16000, "int16")
    source = WavSource(path)
    assert source.read() is not None
    source.close()
    assert source.read() is None


@pytest.mark.unit
def test_missing_and_corrupt_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioSourceError, match="not found"):
        WavSource(tmp_path / "nope.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioSourceError, match="cannot read WAV file"):
        WavSource(garbage)
    good = tmp_path / "good.wav"
    write_pcm_wav(good, speechlike(16000, 0.2), 16000, "int16")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioSourceError, match="cannot read WAV file"):
        read_wav_mono16k(truncated)


@pytest.mark.unit
def test_write_wav_round_trip(tmp_path: Path) -> None:
    x = speechlike(16000, 0.3)
    path = tmp_path / "out.wav"
    write_wav(path, np.concatenate(([1.5, -1.5], x)))
    rate, data = wavfile.read(str(path))
    assert rate == 16000 and data.dtype == np.int16 and data.ndim == 1
    assert data[0] == 32767 and data[1] == -32768
    np.testing.assert_allclose(read_wav_mono16k(path)[2:], x, atol=1 / 32768)


@pytest.mark.integration
def test_a_node_replaying_a_16k_wav_never_imports_scipy(tmp_path: Path) -> None:
    """scipy.io alone costs a Pi ~8 MB of RAM (issue 22): a plain PCM file at 16 kHz, what
    `edge-node record` and the benchmarks write, is replayed without it."""
    path = tmp_path / "replay.wav"
    write_wav(path, speechlike(16000, 1.0))
    assert modules_after_run(["run", "--source", f"wav:{path}", "--display", "none"],
                             ["scipy"]) == (0, [])
