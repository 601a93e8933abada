"""bench.streaming: the bundled model and a candidate compared at equal false activations
(its arithmetic in training.evaluation.metrics and training.evaluation.report, its command end
to end)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_node.model import DEFAULT_MODEL
from training.evaluation.metrics import recall_at
from training.evaluation.report import candidate_comparison_table

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "edge_node" / "data" / "example.wav"


def scores(recall: float, per_hour: float) -> dict:
    return {"recall": recall, "false_activations_per_hour": per_hour, "detected": 0,
            "commands": 10, "recall_per_command": {}}


@pytest.mark.unit
def test_recall_is_interpolated_along_the_trade_off_curve_and_never_extrapolated():
    rows = [(0.4, scores(0.9, 40.0)), (0.5, scores(0.8, 20.0)), (0.6, scores(0.6, 10.0))]
    assert recall_at(rows, 20.0) == pytest.approx(0.8)
    assert recall_at(rows, 30.0) == pytest.approx(0.85)
    assert recall_at(rows, 15.0) == pytest.approx(0.7)
    assert recall_at(rows, 5.0) is None and recall_at(rows, 41.0) is None
    # two thresholds with the same rate: the better recall counts
    assert recall_at([(0.6, scores(0.5, 10.0)), (0.7, scores(0.4, 10.0))], 10.0) == 0.5


@pytest.mark.unit
def test_comparison_reads_the_candidate_at_the_bundled_models_rates():
    bundled = [(0.5, scores(0.9, 16.0)), (0.6, scores(0.87, 6.0))]
    candidate = [(0.3, scores(0.95, 34.0)), (0.4, scores(0.91, 20.0)), (0.5, scores(0.81, 10.0))]
    table = candidate_comparison_table(bundled, candidate)
    # at 16 per hour the candidate is 40% of the way from 10/h (81%) to 20/h (91%): 87%
    assert "| 0.50 | 16 | 90.0% | 87.0% | -3.0 |" in table
    assert "| 0.60 | 6 | 87.0% | n/a | n/a |" in table  # below the candidate's sweep


@pytest.mark.integration
def test_candidate_run_on_the_bundled_recording_writes_a_section(tmp_path):
    """End to end through the node's detector: the bundled model as its own candidate is never
    worse at the bundled model's false-activation rates, and equal where the bundled threshold
    is its best at that rate (on 30 clean seconds both thresholds may fire on nothing, and the
    candidate is then read at its better one)."""
    benchmarks = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.streaming", "--recording", str(EXAMPLE), "--candidate",
         str(DEFAULT_MODEL), "--thresholds", "0.5,0.6", "--candidate-thresholds", "0.5,0.6",
         "--benchmarks", str(benchmarks)], cwd=REPO, capture_output=True, text=True,
        check=True)
    text = benchmarks.read_text()
    assert "<!-- streaming-candidate -->" in text and "`example.wav`: 0.5 minutes" in text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| bundled threshold"))
    end = lines.index("", start)
    compared = [line for line in lines[start + 2:end] if line.startswith("| 0.")]
    assert len(compared) == 2, done.stdout
    assert all("| -" not in row for row in compared), compared
    assert any(row.endswith("| +0.0 |") for row in compared), compared
    # the candidate's own sweep says what its false activations fired on, and recall at 2/h
    assert "of them during near-miss words" in text and "at 2," in text
