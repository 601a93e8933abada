"""StdinSource fed through real pipes, as ``arecord ... | edge-node run --source stdin`` would."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from edge_node.audio import PcmConverter, StdinSource, read_wav_mono16k
from tests.support.audio_signals import REPO, correlation, espeak_word, need_tool, speechlike
from tests.support.node_imports import modules_after_run

pytestmark = pytest.mark.integration


@pytest.fixture()
def speech_wav(tmp_path: Path) -> Path:
    path = tmp_path / "speech16k.wav"
    wavfile.write(str(path), 16000, espeak_word(tmp_path, "stop", 16000).astype(np.float32))
    return path


def _sox_raw(src: Path, opts: list[str], effects: tuple[str, ...] = ()) -> subprocess.Popen:
    cmd = [need_tool("sox"), str(src), "-t", "raw", *opts, "-", *effects]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE)


def _drain(source: StdinSource) -> np.ndarray:
    with source:
        blocks = list(source)
    assert all(b.shape == (1600,) and b.dtype == np.float32 for b in blocks)
    assert source.read() is None
    return np.concatenate(blocks)


def test_int16_mono_16k_pipe(speech_wav: Path) -> None:
    proc = _sox_raw(speech_wav, ["-e", "signed-integer", "-b", "16", "-c", "1", "-r", "16000"])
    y = _drain(StdinSource(proc.stdout, remove_dc=False))
    assert proc.wait() == 0
    ref = read_wav_mono16k(speech_wav)
    assert len(y) == -(-len(ref) // 1600) * 1600
    assert np.abs(y[: len(ref)] - ref).max() < 1e-3
    assert not y[len(ref) :].any()


def test_int32_stereo_48k_pipe_with_dc_on_the_right(speech_wav: Path, tmp_path: Path) -> None:
    ref48 = tmp_path / "ref48k.wav"
    sox = need_tool("sox")
    subprocess.run(
        [sox, str(speech_wav), "-e", "floating-point", "-r", "48000", str(ref48)], check=True
    )
    opts = ["-e", "signed-integer", "-b", "32", "-c", "2", "-r", "48000"]
    proc = _sox_raw(speech_wav, opts, ("remix", "0", "1", "dcshift", "0.1"))
    source = StdinSource(proc.stdout, sample_rate=48000, channels=2, sample_format="int32")
    y = _drain(source)
    assert proc.wait() == 0
    assert source.converter.selected == 1
    ref = read_wav_mono16k(ref48)
    assert abs(len(y) - len(ref)) < 1600
    assert correlation(y[: len(ref)], ref) > 0.99
    assert abs(y[1600:].mean()) < 1e-3, "the 0.1 DC offset is removed"


def test_partial_reads_from_a_slow_writer(tmp_path: Path) -> None:
    x = speechlike(48000, 0.6)
    frames = np.stack([np.zeros_like(x), x], axis=1)
    raw = np.round(frames * (2**31 - 1)).astype("<i4").tobytes()
    data = tmp_path / "pcm.raw"
    data.write_bytes(raw)
    writer = (
        "import sys, time\n"
        f"data = open({str(data)!r}, 'rb').read()\n"
        "for i in range(0, len(data), 333):\n"
        "    sys.stdout.buffer.write(data[i:i + 333]); sys.stdout.buffer.flush()\n"
        "    if i % 33300 == 0: time.sleep(0.002)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE)
    y = _drain(StdinSource(proc.stdout, 48000, 2, "int32", channel=1, remove_dc=False))
    assert proc.wait() == 0
    conv = PcmConverter(48000, 2, "int32", channel=1, remove_dc=False)
    ref = np.concatenate((conv.convert(raw), conv.flush()))
    np.testing.assert_array_equal(y[: len(ref)], ref)


def test_real_stdin_of_a_process_via_the_factory(speech_wav: Path, tmp_path: Path) -> None:
    opts = ["-e", "signed-integer", "-b", "32", "-c", "2", "-r", "48000"]
    proc = _sox_raw(speech_wav, opts, ("remix", "1", "0"))
    out = tmp_path / "captured.npy"
    reader = (
        "import sys, numpy as np\n"
        "from edge_node.audio import AudioSettings, open_source\n"
        "with open_source('stdin:48000:2:S32_LE', AudioSettings()) as src:\n"
        "    np.save(sys.argv[1], np.concatenate(list(src)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", reader, str(out)], stdin=proc.stdout, env=env, check=True)
    proc.stdout.close()
    assert proc.wait() == 0
    y = np.load(out)
    ref = read_wav_mono16k(speech_wav)
    assert len(y) >= len(ref)
    assert correlation(y[: len(ref)], ref) > 0.99


def test_a_node_on_stdin_never_imports_scipy() -> None:
    """scipy.io alone costs a Pi ~9 MB of RAM (issue 22): only reading or writing a file may
    import it, never the live path of `arecord | edge-node run --source stdin`."""
    silence = np.zeros(16000, dtype=np.int16).tobytes()
    assert modules_after_run(["run", "--source", "stdin", "--display", "none"], ["scipy"],
                             stdin=silence) == (0, [])
