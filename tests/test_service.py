"""The node under a fake systemd: notify protocol, watchdog, SIGTERM and SIGHUP reload."""

from __future__ import annotations

import configparser
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edge_node.cli import build_parser
from edge_node.config import load_config
from edge_node.model import DEFAULT_MODEL
from edge_node.service import Notifier, config_changes
from tests.support.audio_signals import REPO
from tests.support.node_process import NodeProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model():
    return DEFAULT_MODEL


@pytest.fixture
def node_factory(tmp_path):
    nodes: list[NodeProcess] = []

    def start(*args: str, **kwargs) -> NodeProcess:
        nodes.append(NodeProcess(tmp_path, *args, **kwargs))
        return nodes[-1]

    yield start
    for node in nodes:
        node.close()


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_status_watchdog_and_stopping(node_factory, model, command_recording, abstract):
    node = node_factory("--source", f"wav:{command_recording[0]}", "--model", str(model),
                        abstract=abstract)
    ready = node.wait_for(lambda: node.times("READY=1"))[0]
    assert any(line.startswith("STATUS=listening on wav:") for line in node.lines("STATUS="))
    node.wait_for(lambda: len([t for t in node.times("WATCHDOG=1") if t > ready + 1.0]) >= 3)
    pings = np.array(node.times("WATCHDOG=1"))
    assert pings[0] >= ready - 0.05, "watchdog pings start once the loop runs"
    gaps = np.diff(pings)
    assert np.median(gaps) <= 0.15, "pings at about half of WATCHDOG_USEC=200 ms"
    assert gaps.max() < 0.4
    code, took = node.terminate()
    assert code == 0 and took < 2.0
    stopping = node.times("STOPPING=1")
    assert len(stopping) == 1 and stopping[0] > pings[-3]
    assert node.log_has("SIGTERM received")


def test_a_stuck_loop_stops_pinging(node_factory, model, command_recording):
    """Audio that stops arriving (stdin left open) means no progress and so no pings."""
    node = node_factory("--source", "stdin", "--model", str(model), stdin=subprocess.PIPE)
    assert node.proc.stdin is not None
    node.proc.stdin.buffer.write(np.zeros(16000, dtype="<i2").tobytes())
    node.proc.stdin.buffer.flush()
    node.wait_for(lambda: node.times("READY=1"))
    time.sleep(0.5)
    last = max(node.times("WATCHDOG=1"))
    time.sleep(1.0)
    assert max(node.times("WATCHDOG=1")) == last, "a loop without audio must not ping"
    node.proc.stdin.buffer.write(np.zeros(8000, dtype="<i2").tobytes())
    node.proc.stdin.buffer.flush()
    node.wait_for(lambda: max(node.times("WATCHDOG=1")) > last, timeout=5)
    node.proc.stdin.close()
    assert node.proc.wait(10) == 0


def test_sighup_applies_a_new_threshold_and_refuses_an_invalid_config(
        node_factory, model, command_recording, tmp_path):
    path, events = command_recording
    config = tmp_path / "node.yaml"
    config.write_text("detector:\n  threshold: 0.6\n")
    node = node_factory("--config", str(config), "--source", f"wav:{path}", "--model",
                        str(model))
    node.wait_for(lambda: node.stdout, timeout=30)
    assert node.stdout[0][1]["time_s"] < events[1][1], "first word heard at threshold 0.6"
    config.write_text("detector:\n  threshold: 1.0\n")
    node.proc.send_signal(signal.SIGHUP)
    reloaded = node.wait_for(lambda: [s for s in node.lines("STATUS=") if "reloaded" in s])
    assert "detector.threshold 0.6 -> 1.0" in reloaded[0]
    # stderr arrives through its own pipe: the log line may trail the notify message
    node.wait_for(lambda: node.log_has("config reloaded: detector.threshold 0.6 -> 1.0"),
                  timeout=5)
    config.write_text("detector:\n  threshold: high\n")
    node.proc.send_signal(signal.SIGHUP)
    node.wait_for(lambda: [s for s in node.lines("STATUS=") if "refused" in s])
    node.wait_for(lambda: node.log_has("config reload refused, keeping the running config: "
                                       "detector.threshold: expected a number"), timeout=5)
    pings = len(node.times("WATCHDOG=1"))
    node.wait_for(lambda: len(node.times("WATCHDOG=1")) > pings + 5, timeout=5)
    stream_s = events[2][2] + 1.5
    heard_by = node.started + stream_s + 1.0
    time.sleep(max(0.0, heard_by - time.monotonic()))
    assert node.proc.poll() is None, "the node keeps running after a refused reload"
    assert len(node.stdout) == 1, "no probability reaches threshold 1.0"
    code, _ = node.terminate()
    assert code == 0


def test_notifier_without_systemd_is_silent_and_parses_the_watchdog():
    assert Notifier({}).notify("READY=1") is False
    assert Notifier({"WATCHDOG_USEC": "3000000"}).watchdog_s == 3.0
    assert Notifier({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"NOTIFY_SOCKET": "@x"}).address == "\0x"


def test_config_changes_names_each_changed_key():
    old = load_config(None)
    new = load_config(None, {"detector.threshold": 0.8, "source": "wav:x.wav"})
    assert config_changes(old, new) == {"detector.threshold": (None, 0.8),
                                        "source": ("mic", "wav:x.wav")}


def test_unit_file_runs_the_node_as_a_notify_service_with_watchdog():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO / "provisioning" / "templates" / "edge-node.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "on-failure"
    assert int(service["WatchdogSec"]) >= 5, "the loop pings every 0.1-0.5 s; leave slack"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "edge-node"
    args = build_parser().parse_args(command[1:])
    assert args.command == "run" and args.config == Path("/etc/edge-node/node.yaml")
