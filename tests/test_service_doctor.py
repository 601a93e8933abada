"""`edge-node doctor`: each check on good and broken setups, and the command end to end."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_node.display import DisplaySettings
from edge_node.doctor import (
    check_broker,
    check_clock,
    check_i2s_overlay,
    check_model,
    check_oled,
)
from edge_node.model import DEFAULT_MODEL, read_manifest
from tests.support.audio_signals import REPO
from tests.support.fake_i2c import FakeI2C
from tests.support.node_process import sph0645_raw
from tests.support.vmic_capture import ALSA_CONF


@pytest.fixture(scope="module")
def model_path() -> Path:
    return DEFAULT_MODEL


@pytest.mark.unit
@pytest.mark.parametrize("text,ok", [
    ("dtparam=i2c_arm=on\ndtparam=i2s=on\n", True),
    ("dtparam=audio=on,i2s=on\n", True),
    ("dtoverlay=googlevoicehat-soundcard\n", True),
    ("#dtparam=i2s=on\ndtparam=i2s=off\ndtoverlay=vc4-kms-v3d\n", False),
])
def test_i2s_overlay(tmp_path, text, ok):
    firmware, legacy = tmp_path / "firmware.txt", tmp_path / "config.txt"
    legacy.write_text("dtparam=i2s=on\n")
    firmware.write_text(text)
    check = check_i2s_overlay([firmware, legacy])
    assert check.ok is ok and str(firmware) in check.detail
    if not ok:
        assert "dtparam=i2s=on" in check.fix


@pytest.mark.unit
def test_i2s_overlay_is_skipped_off_a_pi(tmp_path):
    assert check_i2s_overlay([tmp_path / "absent.txt"]).ok is None


@pytest.mark.unit
def test_clock():
    assert check_clock(dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC)).ok is False
    assert "set-ntp" in check_clock(dt.datetime(2026, 5, 1, tzinfo=dt.UTC), synced=False).fix
    assert check_clock(dt.datetime(2026, 5, 1, tzinfo=dt.UTC), synced=True).ok is True


@pytest.mark.unit
def test_model(model_path, tmp_path):
    good = check_model(model_path)
    manifest = read_manifest(model_path)
    assert good.ok and f"{manifest.name} {manifest.version}" in good.detail
    bad = check_model(tmp_path / "missing.tflite")
    assert bad.ok is False and "does not exist" in bad.detail and bad.fix


@pytest.mark.unit
def test_broker():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert check_broker("127.0.0.1", port).ok is True
    refused = check_broker("127.0.0.1", port, timeout_s=1)
    assert refused.ok is False and "refused" in refused.detail.lower()
    assert check_broker(None).ok is None


@pytest.mark.unit
def test_oled():
    pytest.importorskip("adafruit_ssd1306")
    assert check_oled(DisplaySettings(backend="oled"), FakeI2C(0x3C)).ok is True
    missing = check_oled(DisplaySettings(backend="oled", i2c_address=0x3D), FakeI2C(0x3C))
    assert missing.ok is False and "i2cdetect" in missing.fix
    assert check_oled(DisplaySettings(backend="auto", i2c_address=0x3D), FakeI2C()).ok is None
    assert check_oled(DisplaySettings(backend="none")).ok is None


def doctor(tmp_path: Path, model: Path, vmic: Path) -> tuple[int, dict[str, dict]]:
    conf = tmp_path / "asound.conf"
    conf.write_text(ALSA_CONF)
    node_yaml = tmp_path / "node.yaml"
    node_yaml.write_text(f"source: mic\nmodel: {model}\ndisplay:\n  backend: none\n")
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf), "VMIC_FILE": str(vmic),
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "edge_node", "doctor", "--config",
                           str(node_yaml), "--json"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    checks = {c["name"]: c for c in map(json.loads, done.stdout.splitlines())}
    return done.returncode, checks


@pytest.mark.integration
def test_doctor_measures_the_microphone_and_reports_a_missing_one(
        tmp_path, model_path, command_recording):
    pytest.importorskip("pyaudio")
    vmic = tmp_path / "vmic.raw"
    sph0645_raw(command_recording[0], tmp_path / "padded.wav", vmic)
    code, checks = doctor(tmp_path, model_path, vmic)
    mic = checks["microphone"]
    assert mic["ok"] is True and "'default'" in mic["detail"] and "dBFS" in mic["detail"]
    assert checks["model"]["ok"] is True and checks["oled"]["ok"] is None
    assert code == (1 if any(c["ok"] is False for c in checks.values()) else 0)
    code, checks = doctor(tmp_path, model_path, tmp_path / "unplugged.raw")
    assert code == 1
    assert checks["microphone"]["ok"] is False
    assert checks["microphone"]["detail"].startswith("microphone could not be opened")
    assert "edge-node devices" in checks["microphone"]["fix"]

