"""MicSource for real through PyAudio/PortAudio, with ALSA's file plugin as the microphone.

The raw file imitates the SPH0645 I2S breakout: 32-bit stereo frames with the signal on one
slot only, a DC offset, a very low level (-40 dBFS peaks) and a loud click in the first second.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import wavfile

from edge_node.audio import AudioSourceError, MicSource, WavSource, record, write_wav
from tests.support.audio_signals import REPO, best_correlation, espeak_word, need_tool, speechlike
from tests.support.vmic_capture import ALSA_CONF

pytestmark = pytest.mark.integration

pytest.importorskip("pyaudio", reason="the microphone path needs PyAudio")

STARTUP_S, LEAD_S, TAIL_S = 1.0, 0.2, 0.5
SPEECH_PEAK, DC, CLICK = 0.01, 0.02, 0.8


def sph0645_raw(tmp: Path, speech: np.ndarray, data_ch: int, rate: int, bits: int) -> Path:
    """Raw interleaved stereo PCM as the SPH0645 would deliver it, converted by sox."""
    n_start, n_lead = int(STARTUP_S * 16000), int(LEAD_S * 16000)
    mono = np.zeros(n_start + n_lead + len(speech) + int(TAIL_S * 16000))
    mono[n_start + n_lead : n_start + n_lead + len(speech)] = speech
    t = np.arange(320) / 16000
    mono[4800:5120] += CLICK * np.exp(-t * 300) * np.sign(np.sin(2 * np.pi * 700 * t))
    mono += DC + 3e-4 * np.random.default_rng(7).standard_normal(len(mono))
    stereo = np.zeros((len(mono), 2), dtype=np.float32)
    stereo[:, data_ch] = mono
    wav, raw = tmp / "vmic16k.wav", tmp / f"vmic_{rate}_{bits}.raw"
    wavfile.write(str(wav), 16000, stereo)
    opts = ["-t", "raw", "-e", "signed-integer", "-b", str(bits), "-c", "2", "-r", str(rate)]
    subprocess.run([need_tool("sox"), str(wav), *opts, str(raw)], check=True)
    return raw


def run_child(tmp: Path, mode: str, vmic_file: Path | str, **params: Any) -> dict[str, Any]:
    """Run tests/support/vmic_capture.py with the virtual microphone configured in its
    environment."""
    conf = tmp / "asound.conf"
    conf.write_text(ALSA_CONF)
    result = tmp / f"{mode}_result.json"
    env = {
        **os.environ,
        "ALSA_CONFIG_PATH": str(conf),
        "VMIC_FILE": str(vmic_file),
        "PYTHONPATH": str(REPO),
    }
    child = REPO / "tests" / "support" / "vmic_capture.py"
    cmd = [sys.executable, str(child), mode, json.dumps(params)]
    proc = subprocess.run([*cmd, str(result)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(result.read_text())
    if result.with_suffix(".npy").exists():
        out["audio"] = np.load(result.with_suffix(".npy"))
    return out


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    s = espeak_word(tmp_path_factory.mktemp("speech"), "stop", 16000)
    return SPEECH_PEAK * s / np.abs(s).max()


def _blocks_inside(raw: Path, rate: int, bits: int) -> int:
    """Blocks that stay inside the file (after its end the plugin returns stale data)."""
    seconds = raw.stat().st_size / (rate * 2 * bits // 8) - STARTUP_S
    return int((seconds - 0.15) / 0.1)


@pytest.mark.parametrize(
    "rate,bits,data_ch,extra",
    [
        (16000, 32, 0, {}),
        (16000, 32, 1, {"gain_db": 20.0, "device": "VMIC"}),
        (16000, 16, 0, {"sample_format": "int16", "device": 0}),
        (48000, 32, 1, {"sample_rate": 48000}),
    ],
    ids=["16k-left", "16k-right-gain-name", "16k-int16-index", "48k-right-resampled"],
)
def test_capture_matches_the_spoken_word(
    tmp_path: Path, speech: np.ndarray, rate: int, bits: int, data_ch: int, extra: dict
) -> None:
    raw = sph0645_raw(tmp_path, speech, data_ch, rate, bits)
    got = run_child(
        tmp_path, "capture", raw, settings=extra, blocks=_blocks_inside(raw, rate, bits)
    )
    assert "error" not in got, got.get("error")
    assert got["device"] == ("vmic" if "device" in extra else "default")
    assert got["rate"] == rate and got["channels"] == 2
    assert got["selected_channel"] == data_ch
    assert got["frames_per_buffer"] == rate // 10
    gain = 10 ** (extra.get("gain_db", 0.0) / 20)
    audio = got["audio"]
    assert audio.dtype == np.float32 and len(audio) % 1600 == 0
    assert np.abs(audio).max() < 2 * SPEECH_PEAK * gain, "the click must have been discarded"
    assert abs(audio.mean()) < 0.05 * SPEECH_PEAK * gain, "the DC offset must be removed"
    start, lag = int(LEAD_S * 16000), 80
    corr, found = best_correlation(audio[start - lag :], speech, max_lag=lag)
    assert corr > 0.95 and abs(found) <= 2
    segment = audio[start + found : start + found + len(speech)]
    assert np.std(segment) == pytest.approx(np.std(speech) * gain, rel=0.1)


def test_without_discard_the_click_gets_through(tmp_path: Path, speech: np.ndarray) -> None:
    raw = sph0645_raw(tmp_path, speech, 1, 16000, 32)
    got = run_child(tmp_path, "capture", raw, settings={"discard_s": 0.0}, blocks=20)
    assert got["selected_channel"] == 1
    assert np.abs(got["audio"]).max() > 0.5


def test_explicit_channel_is_obeyed(tmp_path: Path, speech: np.ndarray) -> None:
    raw = sph0645_raw(tmp_path, speech, 1, 16000, 32)
    got = run_child(tmp_path, "capture", raw, settings={"channel": 0}, blocks=10)
    assert got["selected_channel"] == 0
    assert np.abs(got["audio"]).max() < 1e-6, "channel 0 of this microphone is silent"


def test_list_input_devices_finds_the_virtual_microphone(tmp_path: Path) -> None:
    raw = tmp_path / "silence.raw"
    raw.write_bytes(bytes(16000 * 8))
    devices = run_child(tmp_path, "devices", raw)["devices"]
    vmic = next(d for d in devices if d["name"] == "vmic")
    assert set(vmic) == {"index", "name", "max_input_channels", "default_sample_rate", "host_api"}
    assert vmic["max_input_channels"] >= 2 and vmic["host_api"] == "ALSA"
    assert vmic["default_sample_rate"] > 0


def test_missing_microphone_and_unknown_device_errors(tmp_path: Path) -> None:
    got = run_child(tmp_path, "capture", tmp_path / "absent.raw", blocks=1)
    assert got["error"].startswith("microphone could not be opened")
    assert "input devices: none" in got["error"]
    raw = tmp_path / "silence.raw"
    raw.write_bytes(bytes(16000 * 8))
    got = run_child(tmp_path, "capture", raw, settings={"device": "sph0645"}, blocks=1)
    assert got["error"].startswith("no input device matching 'sph0645' (have: ")
    assert "'vmic'" in got["error"]
    got = run_child(tmp_path, "capture", raw, settings={"device": 99}, blocks=1)
    assert got["error"].startswith("no input device with index 99")


def test_record_writes_what_the_microphone_hears(tmp_path: Path, speech: np.ndarray) -> None:
    raw = sph0645_raw(tmp_path, speech, 0, 16000, 32)
    settings = {"gain_db": 30.0}
    path = tmp_path / "rec.wav"
    run_child(tmp_path, "record", raw, settings=settings, seconds=0.55, path=str(path))
    rate, data = wavfile.read(str(path))
    assert rate == 16000 and data.dtype == np.int16 and data.shape == (8800,)
    captured = run_child(tmp_path, "capture", raw, settings=settings, blocks=6)["audio"]
    assert np.abs(data / 32768.0 - captured[:8800]).max() <= 1 / 32768 + 1e-6


def test_record_works_with_any_source(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    x = speechlike(16000, 1.0)
    write_wav(src, x)
    out = tmp_path / "out.wav"
    with WavSource(src) as source:
        samples = record(source, 0.37, out)
    rate, data = wavfile.read(str(out))
    assert rate == 16000 and len(data) == len(samples) == 5920
    np.testing.assert_allclose(data / 32768.0, x[:5920], atol=1.5 / 32768)


def test_missing_pyaudio_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_node.audio import AudioSettings

    monkeypatch.setitem(sys.modules, "pyaudio", None)
    with pytest.raises(AudioSourceError, match=r"pip install 'kws-edge-node\[pi\]'"):
        MicSource(AudioSettings())
