"""Hostile configuration: every bad number or file is one clear message (all errors at once),
never a traceback, at start and on SIGHUP; a refused reload keeps the running config, and a
reload never undoes what Home Assistant set unless the file changed that very setting."""

from __future__ import annotations

import dataclasses
import random
import signal
import subprocess
import sys
import types
import typing

import pytest

from edge_node.config import DEFAULT_EXAMPLE, ConfigError, NodeConfig, load_config
from edge_node.model import DEFAULT_MODEL
from tests.support.audio_signals import REPO
from tests.support.mqtt_broker import Subscriber, broker  # noqa: F401
from tests.support.node_process import NodeProcess


def float_settings(cls: type = NodeConfig, prefix: str = "") -> list[str]:
    """Dotted keys of every float setting in node.yaml, found from the dataclasses."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys += float_settings(hint, f"{prefix}{f.name}.")
        elif hint is float or (typing.get_origin(hint) in (typing.Union, types.UnionType)
                               and float in typing.get_args(hint)):
            keys.append(f"{prefix}{f.name}")
    return keys


@pytest.mark.unit
def test_threshold_zero_is_impossible_from_node_yaml(tmp_path):
    for text in ("detector: {threshold: 0}", "detector: {threshold: 0.0}",
                 "detector: {thresholds: {stop: 0}}"):
        path = tmp_path / "node.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=r"threshold.*0\.01\.\.1"):
            load_config(path)


@pytest.mark.unit
def test_non_finite_numbers_are_refused_in_every_float_setting(tmp_path):
    keys = float_settings()
    assert {"detector.threshold", "detector.refractory_s", "detector.gate_dbfs",
            "audio.gain_db", "detector.block_s"} <= set(keys)
    rng = random.Random(23)
    for key in keys:
        value = rng.choice([".inf", "-.inf", ".nan", ".NaN", "+.inf"])
        section, _, leaf = key.rpartition(".")
        path = tmp_path / "node.yaml"
        path.write_text(f"{section}: {{{leaf}: {value}}}\n" if section else f"{leaf}: {value}\n")
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert key in str(err.value) and "finite" in str(err.value), (key, str(err.value))
    path.write_text("detector: {thresholds: {stop: .nan}}\n")
    with pytest.raises(ConfigError, match="detector.thresholds.stop: expected a finite"):
        load_config(path)


@pytest.mark.unit
def test_every_config_error_is_reported_at_once(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text("detector: {threshold: 7, refractory_s: .nan, colour: red}\n"
                    "audio: {gain_db: .inf}\nmqtt: {port: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    for text in ("detector.threshold", "detector.refractory_s", "detector.colour",
                 "audio.gain_db", "mqtt.port"):
        assert any(text in line for line in lines), (text, lines)


@pytest.mark.unit
def test_empty_mqtt_section_with_mqtt_host_on_the_command_line(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text("mqtt:\n")
    assert load_config(path, {"mqtt.host": "broker.local"}).mqtt.host == "broker.local"


BAD_START = {
    "non_utf8": (b"node_id: k\xffche\xfe\n", [], "not UTF-8"),
    "deeply_nested": (b"detector: " + b"[" * 5000 + b"]" * 5000 + b"\n", [], "nested"),
    "block_s_inf": (b"detector: {mode: block, block_s: .inf}\n", [], "detector.block_s"),
    "wav_without_path": (b"", ["--source", "wav:"], "wav needs a path"),
    "stdin_rate_0": (b"", ["--source", "stdin:0"], "must be positive"),
    "stdin_float64": (b"", ["--source", "stdin:16000:1:float64"], "FORMAT must be one of"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", BAD_START, ids=list(BAD_START))
def test_bad_config_at_start_is_one_clear_error_not_a_traceback(case, tmp_path):
    content, args, expected = BAD_START[case]
    path = tmp_path / "node.yaml"
    path.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "edge_node", "run", "--display", "none",
                           "--config", str(path), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and expected in done.stderr, done.stderr


BAD_RELOAD = {
    "non_utf8": b"detector: {threshold: 0.5}\n# \xff\xfe\n",
    "deeply_nested": b"detector: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n",
    "block_s_inf": b"detector: {mode: block, block_s: .inf}\n",
    "threshold_zero": b"detector: {threshold: 0}\n",
    "nan_refractory": b"detector: {refractory_s: .nan}\n",
}


@pytest.mark.integration
def test_sighup_with_hostile_files_keeps_the_running_node_and_config(command_recording,
                                                                     tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text("detector: {threshold: 0.6}\n")
    node = NodeProcess(tmp_path, "--config", str(path), "--source",
                       f"wav:{command_recording[0]}", "--model", str(DEFAULT_MODEL))
    try:
        node.wait_for(lambda: node.times("READY=1"))
        for k, content in enumerate(BAD_RELOAD.values(), start=1):
            path.write_bytes(content)
            node.proc.send_signal(signal.SIGHUP)
            node.wait_for(lambda k=k: len([s for s in node.lines("STATUS=")
                                           if "refused" in s]) >= k, timeout=10)
        path.write_text("detector: {threshold: 0.7}\n")
        node.proc.send_signal(signal.SIGHUP)
        node.wait_for(lambda: [s for s in node.lines("STATUS=")
                               if "detector.threshold 0.6 -> 0.7" in s], timeout=10)
        assert node.proc.poll() is None
        assert "Traceback" not in node.log()
        code, _ = node.terminate()
        assert code == 0
    finally:
        node.close()


@pytest.mark.integration
def test_sighup_changing_only_log_level_keeps_the_threshold_set_from_home_assistant(
        broker, command_recording, tmp_path):  # noqa: F811
    path = tmp_path / "node.yaml"
    path.write_text(f"node_id: hall\ndetector: {{threshold: 0.6}}\n"
                    f"mqtt: {{host: 127.0.0.1, port: {broker.port}, state_dir: {tmp_path}}}\n")
    ha = Subscriber(broker, "kws/hall/#")
    node = NodeProcess(tmp_path, "--config", str(path), "--source",
                       f"wav:{command_recording[0]}", "--model", str(DEFAULT_MODEL))
    try:
        ha.wait_for(lambda _: [m for m in ha.on("kws/hall/threshold") if m.text == "0.6"])
        ha.publish("kws/hall/threshold/set", "0.42")
        ha.wait_for(lambda _: [m for m in ha.on("kws/hall/threshold") if m.text == "0.42"])
        path.write_text(path.read_text() + "log_level: DEBUG\n")
        node.proc.send_signal(signal.SIGHUP)
        node.wait_for(lambda: node.log_has("config reloaded: log_level 'INFO' -> 'DEBUG'"))
        node.wait_for(lambda: [s for s in node.lines("STATUS=") if "detections" in s])
        assert [m.text for m in ha.on("kws/hall/threshold")][-1] == "0.42"
        assert not node.log_has("threshold changed outside MQTT")
        path.write_text(path.read_text().replace("0.6", "0.55"))
        node.proc.send_signal(signal.SIGHUP)
        ha.wait_for(lambda _: [m for m in ha.on("kws/hall/threshold") if m.text == "0.55"],
                    10, "a threshold edited in the file wins")
        node.terminate()
    finally:
        node.close()



CLI_NUMBERS = {
    "threshold_nan": (["edge_node", "detect", "EXAMPLE", "--threshold", "nan"], "invalid number"),
    "threshold_zero": (["edge_node", "detect", "EXAMPLE", "--threshold", "0"], "0.01..1"),
    "sweep_inf": (["edge_node", "detect", "EXAMPLE", "--sweep", "0.5,inf"], "not a finite"),
    "refractory_inf": (["edge_node", "detect", "EXAMPLE", "--refractory-s", "inf"],
                       "invalid number"),
    "fleet_wait_nan": (["provisioning.cli", "status", "--wait", "nan"], "invalid number"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", CLI_NUMBERS, ids=list(CLI_NUMBERS))
def test_non_finite_or_out_of_range_numbers_on_the_command_line_are_one_clear_error(case):
    args, expected = CLI_NUMBERS[case]
    args = [str(DEFAULT_EXAMPLE) if a == "EXAMPLE" else a for a in args]
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and expected in done.stderr, done.stderr
