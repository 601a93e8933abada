"""The real node (`edge-node run --source wav:...`, real-time) keeps every spoken command
across broker restarts: each arrives exactly once (by seq) and in the spoken order.

Uses the bundled model: the recording's (word, voice) pairs were chosen for it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from edge_node.model import DEFAULT_MODEL
from tests.support.broker_outages import run_outages

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason=f"no {DEFAULT_MODEL}"),
]


def test_spoken_commands_arrive_once_in_order_across_three_broker_restarts(tmp_path: Path) -> None:
    run = run_outages(tmp_path, count=10, outages=3, down_s=1.5, sig=signal.SIGKILL)
    spoken = [w.label for w in run.spoken]
    assert run.node_alive_after_outages, run.node_log[-3000:]
    assert run.exit_code == 0, run.node_log[-3000:]
    assert [s["label"] for s in run.sent] == spoken
    seqs = [b["seq"] for b in run.unique]
    assert seqs == list(range(1, len(spoken) + 1))
    assert [b["command"] for b in run.unique] == spoken
    assert run.lost == 0
    assert run.disconnects == 3, run.node_log[-3000:]
