"""The `edge-node` CLI contracts: JSON Lines on stdout, logs on stderr, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edge_node.config import DEFAULT_EXAMPLE
from tests.support.audio_signals import noise, person_saying, write_wav
from training.data.vocab import COMMANDS
from training.evaluation.metrics import streaming_scores

pytestmark = pytest.mark.integration


def edge_node(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "edge_node", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_classify_prints_one_json_line_per_wav_recursing_directories(tmp_path):
    (tmp_path / "sub").mkdir()
    write_wav(tmp_path / "right.wav", person_saying("right"))
    write_wav(tmp_path / "sub" / "down.wav", person_saying("down"))
    done = edge_node("classify", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["file"].split("/")[-1] for line in lines] == ["right.wav", "down.wav"]
    assert [line["label"] for line in lines] == ["right", "down"]
    for line in lines:
        assert set(line) == {"file", "label", "confidence", "scores"}
        assert len(line["scores"]) == 10
        assert line["confidence"] == max(line["scores"].values())


def test_detect_reports_each_command_with_its_stream_time(command_recording):
    path, events = command_recording
    done = edge_node("detect", str(path), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["label"] for line in lines] == [e[0] for e in events]
    for line, (_, start, end) in zip(lines, events, strict=True):
        assert set(line) == {"label", "confidence", "time_s"}
        assert start < line["time_s"] <= end + 1.0


def test_run_on_a_wav_prints_detections_and_logs_to_stderr(command_recording):
    path, events = command_recording
    done = edge_node("run", "--source", f"wav:{path}", "--node-id", "test-node")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["label"] for line in lines] == [e[0] for e in events]
    assert all(line["node_id"] == "test-node" and line["model_version"] for line in lines)
    assert "listening on wav:" in done.stderr


def test_run_reads_raw_pcm_from_stdin(command_recording):
    path, events = command_recording
    raw = subprocess.run(["sox", str(path), "-t", "raw", "-e", "signed-integer", "-b", "16",
                          "-"], capture_output=True, check=True).stdout
    done = subprocess.run([sys.executable, "-m", "edge_node", "run", "--source", "stdin"],
                          input=raw, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    labels = [json.loads(line)["label"] for line in done.stdout.decode().splitlines()]
    assert labels == [e[0] for e in events]


def test_bundled_example_is_recognised():
    """The example is people no model trained on (held-out Speech Commands speakers over
    held-out real noise): at its own threshold the bundled model finds at least 6 of the
    8 commands (7 when this was written), with at most one false activation."""
    events = json.loads(DEFAULT_EXAMPLE.with_suffix(".json").read_text())
    done = edge_node("detect", str(DEFAULT_EXAMPLE), "--json")
    assert done.returncode == 0, done.stderr
    detections = [json.loads(line) for line in done.stdout.splitlines()]
    result = streaming_scores(detections, events["events"], events["duration_s"], COMMANDS)
    assert result["commands"] == 8
    assert result["detected"] >= 6 and result["false_activations"] <= 1, result


@pytest.mark.parametrize("args, message", [
    (["run", "--config", "/nonexistent/node.yaml"], "cannot read config"),
    (["detect", "/nonexistent.wav"], "nonexistent.wav"),
    (["classify", "--model", "/nonexistent.tflite", "x.wav"], "does not exist"),
    (["run", "--source", "bluetooth"], "bluetooth"),
    (["detect", str(DEFAULT_EXAMPLE), "--hop-ms", "50"], "not a multiple of model"),
])
def test_errors_are_one_clear_line_and_exit_2(args, message):
    done = edge_node(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_classify_continues_past_a_corrupt_file(tmp_path):
    (tmp_path / "a_bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    write_wav(tmp_path / "b_good.wav", person_saying("right"))
    done = edge_node("classify", str(tmp_path), "--json")
    assert done.returncode == 1
    assert [json.loads(x)["label"] for x in done.stdout.splitlines()] == ["right"]
    assert "a_bad.wav" in done.stderr


def test_noise_only_recording_gives_no_detection(tmp_path):
    path = write_wav(tmp_path / "noise.wav", np.concatenate([noise(10, -40), noise(5, -60)]))
    done = edge_node("detect", str(path), "--json")
    assert done.returncode == 0 and done.stdout == ""
